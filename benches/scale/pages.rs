//! Deterministic synthetic pages for the scale harness and the criterion
//! benchmarks: supplier catalogue pages (`/c/<i>.html`) and company-registry
//! records (`/r/<i>.html`), 20–60 KB each, with navigation, inline CSS,
//! minified-looking scripts, JSON-LD, sidebars and footers around the region
//! a watchlist selects (`table#products` / `#company-profile`).
//!
//! Everything is a pure function of (seed, index, page state), so the same
//! inputs always give the same bytes. A [`Model`] decides, per generation,
//! which pages change **inside** the selected region (content: new Western
//! chip rows in a catalogue, NACE 46.77 → 46.52 in a registry record) and
//! which change only **outside** it or only cosmetically (noise: promo text,
//! "recently viewed", script build ids, filing history, and for half of the
//! noisy catalogues the product rows reordered and re-spaced, which is not a
//! change by pivotwatch's rules). The oracle is [`Model::expected`].

#![allow(dead_code)] // each bench binary uses a different part of this file

use std::fmt::Write as _;

/// splitmix64: small, fast, deterministic; good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from a label (FNV-1a of the bytes, then mixed).
    pub fn from_label(parts: &[&dyn std::fmt::Display]) -> Rng {
        let mut s = String::new();
        for p in parts {
            let _ = write!(s, "{p}:");
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng(h);
        r.next();
        r
    }

    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// One element of a slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// (manufacturer, part number stem, description, package) of baseline stock.
const BASE_PARTS: &[(&str, &str, &str, &str)] = &[
    (
        "Yageo",
        "RC0603FR-07",
        "Thick film resistor 0603 1%",
        "0603",
    ),
    ("Yageo", "CC0805KRX7R9BB", "MLCC 0805 X7R 50 V", "0805"),
    (
        "Samsung Electro-Mechanics",
        "CL10A106KP8NNNC",
        "MLCC 10 uF 10 V X5R",
        "0603",
    ),
    (
        "Murata",
        "GRM188R71H104KA93D",
        "MLCC 100 nF 50 V X7R",
        "0603",
    ),
    ("Murata", "BLM18PG221SN1D", "Ferrite bead 220 ohm", "0603"),
    (
        "TDK",
        "MPZ2012S221AT000",
        "Ferrite bead 220 ohm 2 A",
        "0805",
    ),
    ("Everlight", "19-217/GHC-YR1S2/3T", "SMD LED green", "0603"),
    ("Kingbright", "KP-2012SGC", "SMD LED green", "0805"),
    ("Hongfa", "HF115F/012-1ZS3", "Power relay 12 V 16 A", "THT"),
    ("Omron", "G5V-1-DC5", "Signal relay 5 V", "THT"),
    (
        "Jiangsu Changjiang",
        "MMBT3904",
        "NPN transistor 40 V",
        "SOT-23",
    ),
    (
        "Jiangsu Changjiang",
        "SS34",
        "Schottky diode 40 V 3 A",
        "SMA",
    ),
    (
        "Nexperia",
        "BAT54S",
        "Schottky barrier double diode",
        "SOT-23",
    ),
    (
        "Diodes Inc",
        "AP2112K-3.3TRG1",
        "LDO regulator 3.3 V 600 mA",
        "SOT-23-5",
    ),
    (
        "GigaDevice",
        "GD32F103C8T6",
        "Cortex-M3 MCU 64 KB flash",
        "LQFP-48",
    ),
    ("WCH", "CH340G", "USB to UART bridge", "SOP-16"),
    (
        "Espressif",
        "ESP32-WROOM-32E",
        "Wi-Fi + BT module",
        "module",
    ),
    (
        "Hangzhou Silan",
        "SVF4N65F",
        "N-MOSFET 650 V 4 A",
        "TO-220F",
    ),
    (
        "Wurth Elektronik",
        "744031100",
        "Power inductor 10 uH",
        "SMD",
    ),
    (
        "Amphenol",
        "10118194-0001LF",
        "Micro USB B receptacle",
        "SMD",
    ),
    ("JST", "B2B-PH-K-S", "PH connector header 2 pin", "THT"),
    ("Littelfuse", "0451002.MRL", "Fuse 2 A fast acting", "0603"),
    (
        "Vishay",
        "SI2302CDS-T1-GE3",
        "N-MOSFET 20 V 2.6 A",
        "SOT-23",
    ),
    (
        "ON Semiconductor",
        "LM317TG",
        "Adjustable linear regulator",
        "TO-220",
    ),
    (
        "STMicroelectronics",
        "L7805CV",
        "Linear regulator 5 V 1.5 A",
        "TO-220",
    ),
    ("Rohm", "MCR03EZPFX1002", "Chip resistor 10 kOhm", "0603"),
];

/// Rows that content changes add: the processors a pivot shows.
pub const WESTERN_PARTS: &[(&str, &str, &str, &str)] = &[
    (
        "Texas Instruments",
        "TMS320F28335PGFA",
        "C2000 real-time MCU / DSP, 150 MHz",
        "LQFP-176",
    ),
    (
        "Texas Instruments",
        "AM3358BZCZA100",
        "Sitara Cortex-A8 processor",
        "NFBGA-324",
    ),
    (
        "Intel",
        "5CEBA4F23C7N",
        "Cyclone V E FPGA, 49k LE",
        "FBGA-484",
    ),
    ("Intel", "10M08SCE144C8G", "MAX 10 FPGA, 8k LE", "EQFP-144"),
    (
        "NXP",
        "MCIMX6Q5EYM10AD",
        "i.MX 6Quad applications processor",
        "FCBGA-624",
    ),
    (
        "NXP",
        "MIMX8MM6DVTLZAA",
        "i.MX 8M Mini applications processor",
        "FCBGA-486",
    ),
    (
        "Analog Devices",
        "ADSP-BF592KCPZ",
        "Blackfin DSP, 400 MHz",
        "LFCSP-64",
    ),
    (
        "AMD Xilinx",
        "XC7Z020-1CLG400C",
        "Zynq-7000 SoC FPGA",
        "CSBGA-400",
    ),
    (
        "Microchip",
        "ATSAME70Q21B-ANT",
        "Cortex-M7 MCU, 2 MB flash",
        "LQFP-144",
    ),
];

const SCRAP: (&str, &str) = ("46.77", "Wholesale of waste and scrap");
const ELECTRONICS: (&str, &str) = (
    "46.52",
    "Wholesale of electronic and telecommunications equipment and parts",
);
const OTHER_CODES: &[(&str, &str)] = &[
    ("46.72", "Wholesale of metals and metal ores"),
    ("38.32", "Recovery of sorted materials"),
    ("46.90", "Non-specialised wholesale trade"),
    ("49.41", "Freight transport by road"),
    ("52.10", "Warehousing and storage"),
    ("46.69", "Wholesale of other machinery and equipment"),
];
const CATEGORIES: &[&str] = &[
    "Semiconductors",
    "Passive components",
    "Connectors",
    "Electromechanical",
    "Power supplies",
    "Optoelectronics",
    "Test and measurement",
    "Tools and supplies",
    "Cables and wires",
    "Embedded boards",
];
const NAME_A: &[&str] = &[
    "North", "Baltic", "Eastern", "Silver", "Iron", "Granite", "Amber", "Harbor", "Vector",
    "Delta", "Polar", "Central", "Union", "Meridian", "Atlas", "Crown",
];
const NAME_B: &[&str] = &[
    "star", "line", "gate", "port", "way", "field", "bridge", "stone",
];
const NAME_C: &[&str] = &[
    "Metals Trading",
    "Recycling",
    "Import Export",
    "Logistics",
    "Commodities",
    "Industrial Supply",
];
const SUFFIX: &[&str] = &["LLC", "FZE", "SARL", "Ltd", "OOO", "GmbH", "DMCC", "A.S."];
const CITIES: &[(&str, &str)] = &[
    ("Tangier", "MA"),
    ("Dubai", "AE"),
    ("Istanbul", "TR"),
    ("Yerevan", "AM"),
    ("Almaty", "KZ"),
    ("Bishkek", "KG"),
    ("Tbilisi", "GE"),
    ("Hong Kong", "HK"),
];
const FIRST: &[&str] = &[
    "Amir", "Elena", "Karim", "Olga", "Yusuf", "Nadia", "Timur", "Sara",
];
const LAST: &[&str] = &[
    "Haddad",
    "Petrova",
    "Benali",
    "Aliyev",
    "Kaya",
    "Sarkisian",
    "Omarov",
];
const STREETS: &[&str] = &[
    "Industrial Zone Rd",
    "Free Zone Ave",
    "Port Street",
    "Ring Road",
    "Harbour Quay",
];
const FILINGS: &[&str] = &[
    "Annual accounts",
    "Confirmation statement",
    "Change of registered address",
    "Appointment of director",
    "Termination of director",
    "Capital increase",
];
const PROMOS: &[&str] = &[
    "Free shipping over EUR 200 this week",
    "New: same-day dispatch from our Dubai hub",
    "Volume discounts on passives: ask our team",
    "Holiday schedule: orders ship Monday",
    "Register to see stock at all warehouses",
];
const CSS: &str = "body{font-family:Arial,Helvetica,sans-serif;margin:0;color:#222}header{background:#0b3d62;color:#fff;padding:6px 12px}nav.top ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap}nav.top li{margin-right:10px}main{display:flex}aside{width:220px;padding:8px;background:#f4f6f8}article{flex:1;padding:8px 16px}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:3px 6px;font-size:13px}tr.stock-low td{color:#a33}.promo{border:1px dashed #c60;padding:6px;margin:8px 0}footer{background:#222;color:#bbb;padding:12px;display:flex}footer .col{flex:1}.cookie{position:fixed;bottom:0;background:#333;color:#fff;padding:6px}";

/// Which kind of page index `i` is: even = catalogue, odd = registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/c/<entity>.html`, selected region `table#products`.
    Catalogue,
    /// `/r/<entity>.html`, selected region `#company-profile`.
    Registry,
}

/// Page `i` (0 ≤ i < n): entity `i / 2`, catalogue when even.
pub fn kind_of(i: usize) -> Kind {
    if i % 2 == 0 {
        Kind::Catalogue
    } else {
        Kind::Registry
    }
}

/// The URL path of page `i`.
pub fn path_of(i: usize) -> String {
    match kind_of(i) {
        Kind::Catalogue => format!("/c/{}.html", i / 2),
        Kind::Registry => format!("/r/{}.html", i / 2),
    }
}

/// Page index of a URL path, if it is one of ours.
pub fn index_of(path: &str, n: usize) -> Option<usize> {
    let (kind, rest) = if let Some(r) = path.strip_prefix("/c/") {
        (0, r)
    } else if let Some(r) = path.strip_prefix("/r/") {
        (1, r)
    } else {
        return None;
    };
    let e: usize = rest.strip_suffix(".html")?.parse().ok()?;
    let i = e * 2 + kind;
    (i < n).then_some(i)
}

/// What a page looks like at some generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PageState {
    /// Generations in which the selected region really changed.
    pub content: Vec<u32>,
    /// Last generation with a change outside the region (0 = none).
    pub noise: u32,
}

/// Which pages change when: a pure function of (seed, n, fractions).
#[derive(Debug, Clone)]
pub struct Model {
    /// Seed label.
    pub seed: String,
    /// Number of pages (= sources); even: n/2 catalogues and n/2 records.
    pub n: usize,
    /// Pages with a real change per generation, as a fraction of n.
    pub fraction: f64,
    /// Pages with a change outside the region per generation.
    pub noise_fraction: f64,
}

/// Pages that changed between two generations.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Really changed (selected region): must be reported `changed`.
    pub content: Vec<usize>,
    /// Changed only outside the region or cosmetically: must not be.
    pub noise: Vec<usize>,
}

impl Model {
    /// Distinct page indices of one kind, sampled for generation `g`.
    fn sample(&self, what: &str, g: u32, kind: usize, count: usize, avoid: &[usize]) -> Vec<usize> {
        let pool = self.n / 2;
        let count = count.min(pool.saturating_sub(avoid.len()));
        let mut rng = Rng::from_label(&[&self.seed, &what, &g, &kind]);
        let mut out: Vec<usize> = Vec::with_capacity(count);
        while out.len() < count {
            let i = (rng.next() % pool as u64) as usize * 2 + kind;
            if !out.contains(&i) && !avoid.contains(&i) {
                out.push(i);
            }
        }
        out.sort_unstable();
        out
    }

    /// The pages generation `g` (≥ 1) changes: content, then noise
    /// (disjoint), half catalogues and half registry records each.
    pub fn changes(&self, g: u32) -> Expected {
        let per_kind = |f: f64| ((f * self.n as f64) / 2.0).round() as usize;
        let mut content = Vec::new();
        let mut noise = Vec::new();
        for kind in 0..2 {
            let c = self.sample("content", g, kind, per_kind(self.fraction), &[]);
            let nz = self.sample("noise", g, kind, per_kind(self.noise_fraction), &c);
            content.extend(c);
            noise.extend(nz);
        }
        content.sort_unstable();
        noise.sort_unstable();
        Expected { content, noise }
    }

    /// Every page's state at generation `g`.
    pub fn states(&self, g: u32) -> Vec<PageState> {
        let mut s = vec![PageState::default(); self.n];
        for k in 1..=g {
            let ch = self.changes(k);
            for i in ch.content {
                s[i].content.push(k);
            }
            for i in ch.noise {
                s[i].noise = k;
            }
        }
        s
    }

    /// The oracle: what changed from generation `g - 1` to `g`.
    pub fn expected(&self, g: u32) -> Expected {
        if g == 0 {
            Expected::default()
        } else {
            self.changes(g)
        }
    }

    /// The body of page `i` in `state`.
    pub fn render(&self, i: usize, state: &PageState) -> String {
        match kind_of(i) {
            Kind::Catalogue => render_catalogue(&self.seed, i / 2, self.n / 2, state),
            Kind::Registry => render_registry(&self.seed, i / 2, self.n / 2, state),
        }
    }

    /// A strong ETag for page `i` in `state`, without rendering it.
    pub fn etag(&self, i: usize, state: &PageState) -> String {
        let mut r = Rng::from_label(&[&self.seed, &i, &format!("{state:?}")]);
        format!("\"{:016x}\"", r.next())
    }
}

fn company_name(seed: &str, e: usize) -> String {
    let mut r = Rng::from_label(&[&seed, &"name", &e]);
    format!(
        "{}{} {} {}",
        r.pick(NAME_A),
        r.pick(NAME_B),
        r.pick(NAME_C),
        r.pick(SUFFIX)
    )
}

fn js_blob(r: &mut Rng, bytes: usize, build: u32) -> String {
    let mut s = format!("(function(w,d){{'use strict';var q=w._q=w._q||[];w.build={build};");
    let mut n = 0;
    while s.len() < bytes {
        let name = r.next() & 0xff_ffff;
        let val = r.next() & 0xffff_ffff;
        let _ = write!(
            s,
            "function f{name:x}(a,b){{var c=a^{val};for(var i=0;i<b.length;i++){{c=(c*31+b.charCodeAt(i))|0}}return c.toString(16)}};q.push(['f{name:x}',{n}]);"
        );
        n += 1;
    }
    s.push_str("})(window,document);");
    s
}

fn head(out: &mut String, title: &str, r: &mut Rng, build: u32) {
    let kb = r.range(3, 7) as usize * 1024;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<meta name=\"description\" content=\"{title}\">\n\
         <link rel=\"stylesheet\" href=\"/static/site.{:08x}.css\">\n<style>{CSS}</style>\n\
         <script>{}</script>\n</head>\n<body>\n",
        r.next() & 0xffff_ffff,
        js_blob(r, kb, build)
    );
}

fn nav(out: &mut String, r: &mut Rng, kind: &str) {
    out.push_str(
        "<header><a href=\"/\" class=\"logo\">PartsHub</a> | <a href=\"/login\">Sign in</a> | \
         <a href=\"/cart\">Cart (0)</a>\n<nav class=\"top\"><ul>",
    );
    for (j, c) in CATEGORIES.iter().enumerate() {
        let slug = c.to_lowercase().replace(' ', "-");
        let _ = write!(
            out,
            "<li><a href=\"/{kind}/category/{j}-{slug}\">{c}</a></li>"
        );
    }
    for j in 0..r.range(25, 45) {
        let _ = write!(out, "<li><a href=\"/{kind}/brand/{j}\">Brand {j}</a></li>");
    }
    out.push_str("</ul></nav></header>\n");
}

fn footer(out: &mut String, r: &mut Rng, build: u32) {
    out.push_str("<footer>");
    for c in 0..4 {
        out.push_str("<div class=\"col\"><ul>");
        for k in 0..r.range(6, 12) {
            let _ = write!(
                out,
                "<li><a href=\"/help/{c}/{k}\">Help topic {c}.{k}</a></li>"
            );
        }
        out.push_str("</ul></div>");
    }
    let kb = r.range(1, 3) as usize * 1024;
    let _ = write!(
        out,
        "<p>&copy; 2024 PartsHub Group. All prices excl. VAT.</p></footer>\n\
         <div class=\"cookie\">We use cookies. <button>Accept</button></div>\n\
         <script>{}</script>\n</body>\n</html>\n",
        js_blob(r, kb, build)
    );
}

struct Row {
    mfr: &'static str,
    part: String,
    desc: &'static str,
    pkg: &'static str,
    sku: String,
    stock: u64,
    price: String,
    lead: u64,
}

fn row(
    r: &mut Rng,
    p: &(&'static str, &'static str, &'static str, &'static str),
    sku: String,
    variant: bool,
) -> Row {
    let part = if variant {
        format!(
            "{}-{}",
            p.1,
            ["TR", "CT", "ND", "RL", "T&R"][(r.next() % 5) as usize]
        )
    } else {
        p.1.to_string()
    };
    let stock = match r.next() % 4 {
        0 | 1 => 0,
        2 => r.range(1, 50),
        _ => r.range(50, 50_000),
    };
    let cents = if r.chance(0.9) {
        r.range(1, 25_000)
    } else {
        r.range(25_000, 250_000)
    };
    Row {
        mfr: p.0,
        part,
        desc: p.2,
        pkg: p.3,
        sku,
        stock,
        price: format!("{}.{:02}", cents / 100, cents % 100),
        lead: r.range(1, 30),
    }
}

fn write_row(out: &mut String, w: &Row, spaced: bool) {
    let cls = if w.stock < 10 {
        " class=\"stock stock-low\""
    } else {
        " class=\"stock\""
    };
    let (sp, nl) = if spaced {
        ("\n      ", "\n   ")
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "<tr data-sku=\"{}\">{sp}<td class=\"mfr\">{}</td><td class=\"mpn\"><a href=\"/p/{}\">{}</a></td>\
         <td class=\"desc\">{}</td><td class=\"pkg\">{}</td><td{cls}>{}</td><td class=\"price\">{}</td>\
         <td>{} weeks</td>{nl}</tr>",
        w.sku,
        w.mfr.replace('&', "&amp;"),
        w.sku,
        w.part.replace('&', "&amp;"),
        w.desc,
        w.pkg,
        w.stock,
        w.price,
        w.lead
    );
}

/// A catalogue page: the region is `table#products`.
fn render_catalogue(seed: &str, e: usize, entities: usize, s: &PageState) -> String {
    let mut r = Rng::from_label(&[&seed, &"c", &e]);
    let mut out = String::with_capacity(64 * 1024);
    let supplier = company_name(seed, 100_000 + e).replace("Metals Trading", "Electronics");
    let cat = CATEGORIES[e % CATEGORIES.len()];
    let title = format!("{supplier} - {cat} catalogue page {e}");
    head(&mut out, &title, &mut r, s.noise);
    nav(&mut out, &mut r, "c");
    let _ = writeln!(
        out,
        "<div class=\"breadcrumb\"><a href=\"/\">Home</a> &gt; <a href=\"/c/\">Catalogue</a> &gt; {cat} &gt; page {e}</div>"
    );
    out.push_str("<main>\n<aside>\n<h3>Filter</h3><ul>");
    let mut mfrs: Vec<&str> = BASE_PARTS.iter().map(|p| p.0).collect();
    mfrs.dedup();
    for m in mfrs {
        let _ = write!(
            out,
            "<li><label><input type=\"checkbox\" name=\"mfr\" value=\"{m}\"> {m}</label></li>"
        );
    }
    out.push_str("</ul>\n");
    let mut nr = Rng::from_label(&[&seed, &"cnoise", &e, &s.noise]);
    let _ = writeln!(
        out,
        "<div class=\"promo\" id=\"promo\">{} (ref {:06})</div>\n</aside>\n<article>\n<h1>{title}</h1>",
        nr.pick(PROMOS),
        nr.range(0, 999_999)
    );
    let _ = writeln!(
        out,
        "<p class=\"supplier\">Supplier: <strong>{supplier}</strong>, stock location {}</p>",
        r.pick(CITIES).0
    );
    out.push_str(
        "<table id=\"products\" class=\"catalogue\">\n<thead><tr><th>Manufacturer</th><th>Part number</th>\
         <th>Description</th><th>Package</th><th>Stock</th><th>Price (EUR)</th><th>Lead time</th></tr></thead>\n<tbody>\n",
    );
    let nrows = r.range(40, 190) as usize;
    let mut rows: Vec<Row> = (0..nrows)
        .map(|k| {
            let p = r.pick(BASE_PARTS);
            let variant = r.chance(0.7);
            row(&mut r, p, format!("{e}-{k}"), variant)
        })
        .collect();
    for &g in &s.content {
        let mut ar = Rng::from_label(&[&seed, &"cadd", &e, &g]);
        for a in 0..ar.range(1, 3) {
            let p = *ar.pick(WESTERN_PARTS);
            rows.push(row(&mut ar, &p, format!("{e}-g{g}-{a}"), false));
        }
    }
    // Cosmetic noise inside the region: rows reordered and re-spaced. Not a
    // change (items are matched by key), but the body hash differs.
    let cosmetic = s.noise > 0 && Rng::from_label(&[&seed, &"cosmetic", &e, &s.noise]).chance(0.5);
    if cosmetic {
        let mut cr = Rng::from_label(&[&seed, &"shuffle", &e, &s.noise]);
        for k in (1..rows.len()).rev() {
            let j = (cr.next() % (k as u64 + 1)) as usize;
            rows.swap(k, j);
        }
    }
    for w in &rows {
        write_row(&mut out, w, cosmetic);
    }
    out.push_str("</tbody>\n</table>\n<div class=\"pager\">");
    for j in e.saturating_sub(5)..(e + 6).min(entities) {
        let _ = write!(out, "<a href=\"/c/{j}.html\">{j}</a> ");
    }
    let _ = writeln!(
        out,
        "</div>\n<script type=\"application/ld+json\">{{\"@context\":\"https://schema.org\",\"@type\":\"ItemList\",\"name\":\"{title}\",\"numberOfItems\":{}}}</script>\n</article>\n</main>",
        rows.len()
    );
    footer(&mut out, &mut r, s.noise);
    out
}

/// A registry record: the region is `#company-profile`.
fn render_registry(seed: &str, e: usize, entities: usize, s: &PageState) -> String {
    let mut r = Rng::from_label(&[&seed, &"r", &e]);
    let mut out = String::with_capacity(48 * 1024);
    let name = company_name(seed, e);
    let base = if Rng::from_label(&[&seed, &"code", &e]).chance(0.45) {
        SCRAP
    } else {
        *r.pick(OTHER_CODES)
    };
    let code = if s.content.is_empty() {
        base
    } else {
        ELECTRONICS
    };
    let (city, cc) = *r.pick(CITIES);
    let regno = format!("{cc}{:08}", r.range(0, 99_999_999));
    let title = format!("{name} - company record {regno}");
    head(&mut out, &title, &mut r, s.noise);
    nav(&mut out, &mut r, "r");
    let _ = writeln!(
        out,
        "<div class=\"breadcrumb\"><a href=\"/\">Registry</a> &gt; <a href=\"/r/\">Companies</a> &gt; {name}</div>"
    );
    out.push_str("<main>\n<aside>\n<h3>Recently viewed</h3><ul id=\"recent\">");
    let mut nr = Rng::from_label(&[&seed, &"rnoise", &e, &s.noise]);
    for _ in 0..8 {
        let j = (nr.next() % entities.max(1) as u64) as usize;
        let _ = write!(
            out,
            "<li><a href=\"/r/{j}.html\">{}</a></li>",
            company_name(seed, j)
        );
    }
    let _ = writeln!(
        out,
        "</ul>\n<div class=\"promo\">Order a certified extract for EUR {}</div>\n</aside>",
        nr.range(5, 40)
    );
    let _ = writeln!(
        out,
        "<article>\n<h1>{name}</h1>\n<section id=\"company-profile\">\n<dl class=\"fields\">"
    );
    let inc = format!(
        "{:04}-{:02}-{:02}",
        r.range(1995, 2021),
        r.range(1, 12),
        r.range(1, 28)
    );
    let (s1, s2) = (r.pick(OTHER_CODES), r.pick(OTHER_CODES));
    let fields = [
        (
            "Company name",
            format!("<span class=\"name\">{name}</span>"),
        ),
        (
            "Registration number",
            format!("<span class=\"regno\">{regno}</span>"),
        ),
        (
            "Tax ID",
            format!(
                "<span class=\"taxid\">{:09}</span>",
                r.range(0, 999_999_999)
            ),
        ),
        ("Status", "<span class=\"status\">Active</span>".to_string()),
        (
            "Legal form",
            name.rsplit(' ').next().unwrap_or("").to_string(),
        ),
        (
            "Date of incorporation",
            format!("<span class=\"incorporated\">{inc}</span>"),
        ),
        (
            "Share capital",
            format!("{} EUR", r.pick(&[1000, 2500, 10_000, 50_000, 100_000])),
        ),
        (
            "Primary activity",
            format!(
                "<span class=\"activity-code\">{}</span> <span class=\"activity-desc\">{}</span>",
                code.0, code.1
            ),
        ),
        (
            "Secondary activities",
            format!(
                "<ul class=\"secondary\"><li>{} {}</li><li>{} {}</li></ul>",
                s1.0, s1.1, s2.0, s2.1
            ),
        ),
        (
            "Registered address",
            format!(
                "<address>{} {}, {city} {:05}, {cc}</address>",
                r.range(1, 300),
                r.pick(STREETS),
                r.range(1000, 99_999)
            ),
        ),
    ];
    for (k, v) in fields {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str(
        "</dl>\n<h2>Directors and officers</h2>\n<table class=\"directors\">\n\
         <tr><th>Name</th><th>Role</th><th>Appointed</th><th>Nationality</th></tr>\n",
    );
    for _ in 0..r.range(1, 6) {
        let _ = writeln!(
            out,
            "<tr><td class=\"officer\">{} {}</td><td>{}</td><td>{:04}-{:02}-{:02}</td><td>{}</td></tr>",
            r.pick(FIRST),
            r.pick(LAST),
            r.pick(&["Director", "General Director", "Secretary", "Chairman"]),
            r.range(1995, 2023),
            r.range(1, 12),
            r.range(1, 28),
            r.pick(CITIES).1
        );
    }
    // A second or later real change of a record: a new officer each time.
    for &g in s.content.iter().skip(1) {
        let _ = writeln!(
            out,
            "<tr><td class=\"officer\">{} Newman-{g}</td><td>Director</td><td>2025-03-01</td><td>AE</td></tr>",
            r.pick(FIRST)
        );
    }
    out.push_str(
        "</table>\n</section>\n<section id=\"filings\">\n<h2>Filing history</h2>\n<table class=\"filings\">\n\
         <tr><th>Date</th><th>Document</th><th>Description</th><th>Pages</th></tr>\n",
    );
    if s.noise > 0 {
        let _ = writeln!(
            out,
            "<tr><td>2025-01-{:02}</td><td>DOC-N{}</td><td>Confirmation statement</td><td>1</td></tr>",
            1 + s.noise % 28,
            s.noise
        );
    }
    for &g in s.content.iter().rev() {
        let _ = writeln!(
            out,
            "<tr><td>2025-02-{:02}</td><td>CH-ACT-{g}</td><td>Change of principal activity from {} to {}</td><td>2</td></tr>",
            1 + g % 28,
            SCRAP.0,
            ELECTRONICS.0
        );
    }
    for _ in 0..r.range(90, 300) {
        let _ = writeln!(
            out,
            "<tr><td>{:04}-{:02}-{:02}</td><td>DOC-{:07}</td><td>{}</td><td>{}</td></tr>",
            r.range(1996, 2023),
            r.range(1, 12),
            r.range(1, 28),
            r.range(0, 9_999_999),
            r.pick(FILINGS),
            r.range(1, 40)
        );
    }
    out.push_str("</table>\n</section>\n</article>\n</main>\n");
    footer(&mut out, &mut r, s.noise);
    out
}

/// The watchlist TOML of entity `e` (its catalogue and registry sources)
/// served at `base` (e.g. `http://127.0.0.1:4000`).
pub fn entity_toml(base: &str, e: usize) -> String {
    format!(
        r##"
[[entity]]
id = "e{e}"
name = "Entity {e}"
jurisdiction = "MA"

[[entity.source]]
id = "catalogue"
kind = "catalogue"
url = "{base}/c/{e}.html"
[entity.source.items]
row = "table#products tbody tr"
manufacturer = "td.mfr"
part_number = "td.mpn"
name = "td.desc"
price = "td.price"
link = {{ selector = "td.mpn a", attr = "href" }}
[entity.source.items.columns]
package = "td.pkg"
stock = "td.stock"

[[entity.source]]
id = "registry"
kind = "registry"
url = "{base}/r/{e}.html"
[entity.source.fields]
name = "#company-profile .name"
regno = "#company-profile .regno"
status = "#company-profile .status"
activity = "#company-profile .activity-code"
activity_desc = "#company-profile .activity-desc"
secondary = {{ selector = "#company-profile ul.secondary li", all = true }}
address = "#company-profile address"
officers = {{ selector = "#company-profile td.officer", all = true }}
"##
    )
}

/// Source key (`entity/source`) of page `i`, as `once --json` names it.
pub fn source_of(i: usize) -> (String, &'static str) {
    let s = match kind_of(i) {
        Kind::Catalogue => "catalogue",
        Kind::Registry => "registry",
    };
    (format!("e{}", i / 2), s)
}
