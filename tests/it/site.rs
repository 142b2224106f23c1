//! `kind = "site"`: whole websites served on 127.0.0.1, zero selectors in
//! the watchlist. Each test builds its own small site.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use pivotwatch::app::demo::Page;
use pivotwatch::check::{CheckReport, Checker};
use pivotwatch::fetch::{Politeness, Robots};
use pivotwatch::record::{Change, CheckStatus, FieldValue, Finding, Record, Severity};

use crate::support::{Env, SETTINGS};

const SCRAP: &str = "NACE:46.77";
const ELECTRONICS: &str = "NACE:46.52";

fn watchlist(activity: &str, extra: &str) -> String {
    format!(
        r#"
[watchlist]
name = "t"
[[entity]]
id = "atlas"
name = "Atlas Metaux"
activity = ["{activity}"]
[[entity.source]]
id = "site"
kind = "site"
url = "{{BASE}}/"
{extra}
"#
    )
}

async fn env(activity: &str, extra: &str) -> Env {
    let env = Env::new().await;
    env.write(SETTINGS, &watchlist(activity, extra));
    env
}

fn page(title: &str, body: &str) -> Page {
    Page::html(format!(
        "<!doctype html><html><head><title>{title}</title></head><body>\
         <nav><a href=\"/\">Home</a> <a href=\"/about\">About</a></nav>{body}\
         <footer>© Atlas Metaux, Tanger</footer></body></html>"
    ))
}

/// Checks every source once with politeness and robots.txt, as `run`
/// and `once` do.
async fn check(env: &Env) -> Vec<CheckReport> {
    let config = env.config();
    let store = env.store();
    let polite = Arc::new(Politeness::new(4, Duration::from_millis(0), Vec::new()));
    let robots = Arc::new(Robots::new(
        &config.settings.http.user_agent,
        Some(polite.clone()),
    ));
    let checker = Checker::new(config.clone(), store.clone())
        .expect("checker")
        .with_politeness(polite, Some(robots));
    let ids: Vec<(String, String)> = config
        .sources()
        .map(|(e, s)| (e.id.clone(), s.id.clone()))
        .collect();
    let reports = checker.check_all(&ids).await;
    store.flush().expect("flush");
    reports
}

fn latest(env: &Env) -> Record {
    env.store()
        .latest_snapshot("atlas/site")
        .expect("store")
        .expect("a snapshot")
        .record
}

fn findings(env: &Env) -> Vec<Finding> {
    env.store().findings().expect("findings")
}

fn list(r: &Record, field: &str) -> Vec<String> {
    match r.fields.get(field) {
        Some(FieldValue::List(l)) => l.clone(),
        Some(FieldValue::Text(t)) => vec![t.clone()],
        None => vec![],
    }
}

fn home(links: &str) -> Page {
    page(
        "Atlas Metaux",
        &format!(
            "<h1>Atlas Metaux</h1><p>Achat et vente de ferraille et métaux non ferreux.</p>{links}"
        ),
    )
}

fn electronics_page() -> Page {
    page(
        "Électronique",
        r#"<h1>Composants électroniques</h1>
<table><tr><th>Référence</th><th>Marque</th><th>Prix</th></tr>
<tr><td>TMS320F28335PGFA</td><td>Texas Instruments</td><td>14,90 €</td></tr>
<tr><td>XC7A35T-1CPG236C</td><td>Xilinx</td><td>39,00 €</td></tr>
<tr><td>STM32F407VGT6</td><td>STMicroelectronics</td><td>8,20 €</td></tr>
</table><button>Ajouter au panier</button>"#,
    )
}

#[tokio::test]
async fn a_sitemap_index_with_a_gzip_child_finds_pages_no_link_reaches() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(""));
    s.set(
        "/robots.txt",
        Page {
            content_type: "text/plain".into(),
            ..Page::html(format!(
                "User-agent: *\nAllow: /\nSitemap: {}\n",
                s.url("/sitemap-index.xml")
            ))
        },
    );
    s.set(
        "/sitemap-index.xml",
        Page {
            content_type: "application/xml".into(),
            ..Page::html(format!(
                r#"<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>{}</loc></sitemap></sitemapindex>"#,
                s.url("/sitemap-products.xml.gz")
            ))
        },
    );
    let urlset = format!(
        r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{}</loc></url></urlset>"#,
        s.url("/catalogue/electronique?utm_source=sitemap")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(urlset.as_bytes()).expect("gzip");
    s.set(
        "/sitemap-products.xml.gz",
        Page {
            status: 200,
            content_type: "application/gzip".into(),
            headers: vec![],
            body: gz.finish().expect("gzip"),
        },
    );
    s.set("/catalogue/electronique", electronics_page());
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    let rec = latest(&env);
    assert!(
        list(&rec, "pages")
            .iter()
            .any(|p| p.ends_with("/catalogue/electronique")),
        "{:?}",
        list(&rec, "pages")
    );
    assert!(
        rec.items.contains_key("TMS320F28335PGFA"),
        "{:?}",
        rec.items.keys()
    );
}

#[tokio::test]
async fn a_site_with_links_only_is_walked_breadth_first_within_max_pages() {
    let env = env(SCRAP, "max_pages = 4").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/a">A</a> <a href="/b#x">B</a> <a href="/c">C</a> <a href="mailto:x@y.z">mail</a>"#));
    s.set(
        "/a",
        page(
            "A",
            "<p>Intel processors wanted.</p><a href=\"/a/deep\">deep</a>",
        ),
    );
    s.set("/b", page("B", "<p>NXP microcontrollers.</p>"));
    s.set("/c", page("C", "<p>Analog Devices.</p>"));
    s.set("/a/deep", page("D", "<p>AMD.</p>"));
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    // Breadth first, links in order: /, /a, /about (404, gone), /b; the
    // fourth fetch is the last.
    let pages = list(&latest(&env), "pages");
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(!pages.iter().any(|p| p.ends_with("/c")), "{pages:?}");
    assert!(
        pages.iter().any(|p| p.ends_with("/a")) && pages.iter().any(|p| p.ends_with("/b")),
        "{pages:?}"
    );
    assert!(!pages.iter().any(|p| p.ends_with("/deep")), "{pages:?}");
}

#[tokio::test]
async fn a_robots_disallowed_section_is_never_fetched() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set(
        "/robots.txt",
        Page {
            content_type: "text/plain".into(),
            ..Page::html("User-agent: *\nDisallow: /private/\n")
        },
    );
    s.set(
        "/",
        home(r#"<a href="/private/stock">Stock</a> <a href="/public">Public</a>"#),
    );
    s.set("/private/stock", electronics_page());
    s.set("/public", page("Public", "<p>Nous achetons du cuivre.</p>"));
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    let rec = latest(&env);
    assert!(!list(&rec, "pages").iter().any(|p| p.contains("/private/")));
    assert!(!rec.items.contains_key("TMS320F28335PGFA"));
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("robots.txt disallows"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_javascript_only_page_is_reported_not_read_as_empty() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/shop">Shop</a>"#));
    s.set(
        "/shop",
        Page::html(r#"<html><head><title>Shop</title><script src="/app.js"></script></head><body><div id="root"></div></body></html>"#),
    );
    check(&env).await;
    let rec = latest(&env);
    let js = list(&rec, "javascript-only pages");
    assert_eq!(js.len(), 1, "{:?}", rec.fields);
    assert!(js[0].ends_with("/shop"));
}

#[tokio::test]
async fn a_catalogue_turning_into_a_javascript_shell_removes_nothing() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/shop">Shop</a>"#));
    s.set("/shop", electronics_page());
    check(&env).await;
    s.set(
        "/shop",
        Page::html(r#"<html><head><title>Shop</title><script src="/app.js"></script></head><body><div id="root"></div></body></html>"#),
    );
    let r = check(&env).await;
    assert!(
        !r[0]
            .changes
            .iter()
            .any(|c| matches!(c, Change::ItemRemoved { .. })),
        "{:?}",
        r[0].changes
    );
    let rec = latest(&env);
    assert!(rec.items.contains_key("TMS320F28335PGFA"));
    assert_eq!(
        list(&rec, "javascript-only pages").len(),
        1,
        "{:?}",
        rec.fields
    );
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("JavaScript shell"),
        "{r:?}"
    );
}

#[tokio::test]
async fn french_russian_and_arabic_pages_give_mentions() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/fr/produits">FR</a> <a href="/ru/produkty">RU</a> <a href="/ar/products">AR</a>"#));
    s.set(
        "/fr/produits",
        page(
            "Produits",
            "<p>Processeurs Intel et microcontrôleurs NXP disponibles.</p>",
        ),
    );
    s.set(
        "/ru/produkty",
        page(
            "Продукция",
            "<p>Микроконтроллеры STM32F407VGT6 производства STMicroelectronics.</p>",
        ),
    );
    s.set(
        "/ar/products",
        page("منتجات", "<p dir=\"rtl\">معالجات إنتل متوفرة</p>"),
    );
    check(&env).await;
    let rec = latest(&env);
    let keys: Vec<&String> = rec.items.keys().collect();
    assert!(rec.items.contains_key("intel|cpu"), "{keys:?}");
    assert!(rec.items.contains_key("STM32F407VGT6"), "{keys:?}");
    let intel = &rec.items["intel|cpu"];
    let seen = intel.extra.get("seen on").cloned().unwrap_or_default();
    assert!(
        seen.contains("/fr/produits") && seen.contains("/ar/products"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_scrap_dealers_new_electronics_page_with_prices_raises_high() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/about">About</a>"#));
    s.set(
        "/about",
        page("About", "<p>Depuis 1998, ferraille et métaux.</p>"),
    );
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    assert!(findings(&env).iter().all(|f| f.severity < Severity::High));
    s.set(
        "/",
        home(r#"<a href="/about">About</a> <a href="/electronique">Électronique</a>"#),
    );
    s.set("/electronique", electronics_page());
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{r:?}");
    let high: Vec<Finding> = findings(&env)
        .into_iter()
        .filter(|f| f.severity >= Severity::High)
        .collect();
    assert!(!high.is_empty(), "{:?}", findings(&env));
    let f = &high[0];
    let facts = format!("{:?}", f.evidence.facts);
    assert!(facts.contains("context of TMS320F28335PGFA"), "{facts}");
    assert!(
        facts.contains("strong") && facts.contains("/electronique"),
        "{facts}"
    );
    assert!(
        f.explanation.contains("weighed by its context"),
        "{}",
        f.explanation
    );
}

#[tokio::test]
async fn a_scrap_dealers_blog_about_intel_raises_no_high() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/blog/2024/marches">Blog</a>"#));
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    s.set(
        "/blog/2024/marches",
        page(
            "Blog",
            "<article><h2>Les marchés de la semaine</h2><p>Intel a publié ses résultats trimestriels; le cours du cuivre monte. Les processeurs Intel et AMD se vendent moins.</p></article>",
        ),
    );
    check(&env).await;
    let rec = latest(&env);
    assert!(rec.items.is_empty(), "{:?}", rec.items);
    assert!(
        list(&rec, "weak mentions")
            .iter()
            .any(|w| w.contains("Intel") && w.contains("news post")),
        "{:?}",
        rec.fields
    );
    let all = findings(&env);
    assert!(all.iter().all(|f| f.severity < Severity::High), "{all:?}");
}

#[tokio::test]
async fn an_electronics_distributor_is_no_mismatch() {
    let env = env(ELECTRONICS, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/electronique">Électronique</a>"#));
    s.set("/electronique", electronics_page());
    check(&env).await;
    assert!(latest(&env).items.contains_key("TMS320F28335PGFA"));
    let all = findings(&env);
    assert!(!all.iter().any(|f| f.rule == "profile_mismatch"), "{all:?}");
}

/// A one-page PDF with `lines` of Helvetica text.
fn pdf(lines: &[&str]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut ops = vec![];
    for (i, l) in lines.iter().enumerate() {
        let y = 780 - 14 * i64::try_from(i).expect("line");
        ops.push(Operation::new("BT", vec![]));
        ops.push(Operation::new("Tf", vec!["F1".into(), 11.into()]));
        ops.push(Operation::new("Td", vec![50.into(), y.into()]));
        ops.push(Operation::new("Tj", vec![Object::string_literal(*l)]));
        ops.push(Operation::new("ET", vec![]));
    }
    let content = Content { operations: ops };
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        content.encode().expect("encode"),
    ));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("pdf");
    out
}

#[tokio::test]
async fn a_linked_pdf_price_list_gives_mentions() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set(
        "/",
        home(r#"<a href="/docs/tarifs-2024.pdf">Tarifs (PDF)</a>"#),
    );
    s.set(
        "/docs/tarifs-2024.pdf",
        Page {
            status: 200,
            content_type: "application/pdf".into(),
            headers: vec![],
            body: pdf(&[
                "Tarifs 2024",
                "TMS320F28335PGFA  Texas Instruments  DSP  14.90 EUR",
                "Cuivre  6.10 EUR/kg",
            ]),
        },
    );
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::New, "{r:?}");
    let rec = latest(&env);
    let item = rec
        .items
        .get("TMS320F28335PGFA")
        .unwrap_or_else(|| panic!("{:?}", rec));
    assert!(
        item.link.as_deref().unwrap_or("").ends_with(".pdf"),
        "{item:?}"
    );
    assert_eq!(item.price.as_deref(), Some("14.90 EUR"));
}

#[tokio::test]
async fn a_page_turning_into_a_bot_challenge_removes_nothing() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/electronique">Électronique</a>"#));
    s.set("/electronique", electronics_page());
    check(&env).await;
    let before = latest(&env);
    assert!(before.items.contains_key("TMS320F28335PGFA"));
    s.set(
        "/electronique",
        Page::html("<html><head><title>Just a moment...</title></head><body><h1>Please complete the security check to access this site</h1><div class=\"cf-challenge\">Checking your browser before accessing</div></body></html>"),
    );
    let r = check(&env).await;
    assert_ne!(r[0].status, CheckStatus::Changed, "{r:?}");
    assert!(
        r[0].changes
            .iter()
            .all(|c| !matches!(c, Change::ItemRemoved { .. } | Change::ValueRemoved { .. })),
        "{:?}",
        r[0].changes
    );
    assert_eq!(
        latest(&env).items.keys().collect::<Vec<_>>(),
        before.items.keys().collect::<Vec<_>>()
    );
    assert!(
        r[0].error.as_deref().unwrap_or("").contains("block page"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_redesign_moving_products_to_new_urls_adds_no_mention() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/electronique">Électronique</a>"#));
    s.set("/electronique", electronics_page());
    check(&env).await;
    let before = findings(&env).len();
    s.remove("/electronique");
    s.set("/", home(r#"<a href="/shop/components/">Composants</a>"#));
    s.set("/shop/components/", electronics_page());
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{r:?}");
    assert!(
        !r[0]
            .changes
            .iter()
            .any(|c| matches!(c, Change::ItemAdded { .. } | Change::ItemRemoved { .. })),
        "{:?}",
        r[0].changes
    );
    let new: Vec<Finding> = findings(&env).into_iter().skip(before).collect();
    assert!(new.iter().all(|f| f.severity <= Severity::Low), "{new:?}");
}

#[tokio::test]
async fn an_unchanged_site_is_revalidated_with_304s_and_writes_no_snapshot() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    let mut links = String::new();
    for i in 0..30 {
        links.push_str(&format!("<a href=\"/p/{i}\">{i}</a> "));
        s.set(
            &format!("/p/{i}"),
            page(
                "P",
                &format!("<p>Lot {i}: cuivre, laiton, Intel et AMD.</p>"),
            ),
        );
    }
    s.set("/", home(&links));
    check(&env).await;
    let history = env.store().history("atlas/site").expect("history").len();
    let table = |env: &Env| {
        env.store()
            .source_state("atlas/site")
            .expect("state")
            .expect("state")
            .pages[0]
            .hash
            .clone()
    };
    let before = table(&env);
    let requests = env.site.requests();
    let logged = env.site.request_log().len();
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{r:?}");
    // robots.txt once (its Sitemap: lines come from the politeness
    // cache's copy), /sitemap.xml, /about (404) and one conditional GET
    // per page.
    assert!(
        env.site.requests() - requests <= 35,
        "{}",
        env.site.requests() - requests
    );
    let robots = env.site.request_log()[logged..]
        .iter()
        .filter(|(p, _)| p == "/robots.txt")
        .count();
    assert_eq!(robots, 1, "robots.txt fetched {robots} times in one check");
    assert_eq!(table(&env), before, "the page table is the same blob");
    assert_eq!(
        env.store().history("atlas/site").expect("history").len(),
        history
    );
    // The state names one page table (a blob): unchanged, nothing new.
    let state = env
        .store()
        .source_state("atlas/site")
        .expect("state")
        .expect("state");
    assert_eq!(state.pages.len(), 1);
    let table = env
        .store()
        .blob(&format!(
            "pivotwatch:site-pages:{}",
            state.pages[0].hash.clone().expect("hash")
        ))
        .expect("blob")
        .expect("the page table");
    let pages: Vec<serde_json::Value> = serde_json::from_slice(&table).expect("json");
    assert_eq!(pages.len(), 31);
    assert!(
        pages
            .iter()
            .all(|p| p["hash"].is_string() && p["etag"].is_string()),
        "{pages:?}"
    );
}

#[tokio::test]
async fn check_rejects_selectors_on_a_site_and_site_keys_elsewhere() {
    let env = Env::new().await;
    env.write(
        SETTINGS,
        r#"
[watchlist]
name = "t"
[[entity]]
id = "a"
name = "A"
[[entity.source]]
id = "site"
kind = "site"
url = "{BASE}/"
include = ["produits/*"]
[entity.source.fields]
name = "h1"
[[entity.source]]
id = "cat"
kind = "page"
url = "{BASE}/x"
max_depth = 2
[entity.source.fields]
name = "h1"
"#,
    );
    let err = pivotwatch::config::Config::load(&env.opts()).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("test.toml:11:12: URL pattern"), "{text}");
    assert!(text.contains("must start with `/`"), "{text}");
    assert!(text.contains("needs no selectors"), "{text}");
    assert!(
        text.contains("`max_depth` is for kind = \"site\""),
        "{text}"
    );
}

#[test]
fn probe_site_lists_pages_and_mentions_with_their_context() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let site = rt
        .block_on(pivotwatch::app::demo::Site::start())
        .expect("site");
    site.set(
        "/",
        home(r#"<a href="/electronique">Électronique</a> <a href="/blog/intel">Blog</a>"#),
    );
    site.set("/electronique", electronics_page());
    site.set("/blog/intel", page("Blog", "<p>Intel results.</p>"));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::support::process::pivotwatch(
        dir.path(),
        &[
            "probe",
            "--site",
            &site.url("/"),
            "--allow-private-addresses",
        ],
    );
    let text = crate::support::process::stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        crate::support::process::stderr(&out)
    );
    assert!(
        text.contains("pages read:") && text.contains("/electronique (3 mentions)"),
        "{text}"
    );
    assert!(
        text.contains(
            "[TMS320F28335PGFA] TMS320F28335PGFA (Texas Instruments): strong (price, table row"
        ),
        "{text}"
    );
    assert!(text.contains("[intel] Intel: weak (news post)"), "{text}");
}

#[test]
fn the_demo_shows_a_firm_watched_by_its_website_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::support::process::pivotwatch(dir.path(), &["demo", "--dir", "d"]);
    let text = crate::support::process::stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        crate::support::process::stderr(&out)
    );
    let site_part = text
        .split("== 7.")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        site_part.contains("kind = \"site\", zero selectors"),
        "{site_part}"
    );
    assert!(
        site_part.contains("HIGH rif-recyclage/site [profile_mismatch]"),
        "{site_part}"
    );
    assert!(
        site_part.contains("context of TMS320F28335PGFA: strong"),
        "{site_part}"
    );
    let emls = std::fs::read_dir(dir.path().join("d/website/spool"))
        .expect("spool")
        .count();
    assert!(emls >= 1);
    // The first scenario's folder is left as it was.
    assert!(dir.path().join("d/watchlists/demo.toml").exists());
}

#[tokio::test]
async fn explain_shows_where_each_mention_was_seen() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set(
        "/",
        home(r#"<a href="/electronique">Électronique</a> <a href="/news/intel">News</a>"#),
    );
    s.set("/electronique", electronics_page());
    s.set("/news/intel", page("News", "<p>Intel results.</p>"));
    check(&env).await;
    let config = env.config();
    let store = env.store();
    let mut out = Vec::new();
    pivotwatch::read::explain(&config, &store, "atlas", false, &mut out).expect("explain");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("website (site): 3 pages, 3 mentions"),
        "{text}"
    );
    assert!(
        text.contains("TMS320F28335PGFA (dsp)") || text.contains("- TMS320F28335PGFA: strong"),
        "{text}"
    );
    assert!(
        text.contains("/electronique: “TMS320F28335PGFA Texas Instruments 14,90 €”"),
        "{text}"
    );
    assert!(text.contains("- weak: Intel (news post)"), "{text}");
}

#[tokio::test]
async fn a_known_page_the_walk_no_longer_reaches_keeps_its_mentions() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set(
        "/",
        home(r#"<a href="/a">A</a> <a href="/z-electronique">Électronique</a>"#),
    );
    s.set("/a", page("A", "<p>Cuivre.</p>"));
    s.set("/z-electronique", electronics_page());
    check(&env).await;
    assert!(latest(&env).items.contains_key("TMS320F28335PGFA"));
    // Now the walk stops before the electronics page (home, /a, /about).
    env.write(SETTINGS, &watchlist(SCRAP, "max_pages = 3"));
    let r = check(&env).await;
    assert!(
        !r[0]
            .changes
            .iter()
            .any(|c| matches!(c, Change::ItemRemoved { .. })),
        "{:?}",
        r[0].changes
    );
    assert!(latest(&env).items.contains_key("TMS320F28335PGFA"));
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("not read this time"),
        "{r:?}"
    );
}

#[tokio::test]
async fn makers_named_in_plain_text_weigh_less_than_a_product_page() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/marques">Marques</a>"#));
    s.set(
        "/marques",
        page(
            "Nos marques",
            "<p>Nous proposons des processeurs de fabricants américains et européens : Texas Instruments, Intel, NXP.</p>",
        ),
    );
    check(&env).await;
    let rec = latest(&env);
    assert!(
        rec.items.contains_key("intel|cpu"),
        "{:?}",
        rec.items.keys()
    );
    let all = findings(&env);
    let pm: Vec<&Finding> = all
        .iter()
        .filter(|f| f.rule == "profile_mismatch")
        .collect();
    assert_eq!(pm.len(), 1, "{all:?}");
    assert_eq!(pm[0].severity, Severity::Medium, "{:?}", pm[0]);
    assert!(
        pm[0].explanation.contains("Lowered to medium"),
        "{}",
        pm[0].explanation
    );
    assert!(
        pm[0].evidence.items.iter().all(|i| i.confidence < 0.6),
        "{:?}",
        pm[0].evidence.items
    );
    // `explain` gives the same verdict as the stored finding: the
    // weighing is part of the judgement, not a step after it.
    let mut out = Vec::new();
    pivotwatch::read::explain(&env.config(), &env.store(), "atlas", true, &mut out)
        .expect("explain");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("explain JSON");
    let pm = v["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "profile_mismatch"))
        .unwrap_or_else(|| panic!("no profile_mismatch in {v}"));
    assert_eq!(pm["severity"], "medium", "{v}");
}

#[tokio::test]
async fn gc_keeps_the_blobs_a_site_state_names() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    let mut links = String::new();
    for i in 0..5 {
        links.push_str(&format!("<a href=\"/p/{i}\">{i}</a> "));
        s.set(
            &format!("/p/{i}"),
            page("P", &format!("<p>Lot {i}: cuivre, Intel et AMD.</p>")),
        );
    }
    s.set("/", home(&links));
    check(&env).await;
    // A retention pass: no snapshot names a site's page bodies, scans or
    // page table, but its source state does, so they stay.
    let report = env
        .store()
        .gc(
            &pivotwatch::store::RetentionPolicy::default(),
            chrono::Utc::now(),
        )
        .expect("gc");
    let state = env
        .store()
        .source_state("atlas/site")
        .expect("state")
        .expect("state");
    let table_key = format!(
        "pivotwatch:site-pages:{}",
        state.pages[0].hash.clone().expect("hash")
    );
    let table = env
        .store()
        .blob(&table_key)
        .expect("blob")
        .unwrap_or_else(|| panic!("gc removed the page table ({report:?})"));
    let pages: Vec<serde_json::Value> = serde_json::from_slice(&table).expect("json");
    assert!(pages.len() >= 6, "{pages:?}");
    for p in &pages {
        if let Some(h) = p["hash"].as_str() {
            assert!(
                env.store().blob(h).expect("blob").is_some(),
                "gc removed the body of {}",
                p["url"]
            );
        }
    }
    let r = check(&env).await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{r:?}");
}

/// Evidence per page: the snapshot of a site check keeps how each page
/// read in it was fetched, the page's body being its own blob; the
/// finding's bundle and the WARC export give the page exactly as served,
/// and a retention pass keeps it while the snapshot lives.
#[tokio::test]
async fn a_site_findings_evidence_holds_the_product_page_as_served() {
    let env = env(SCRAP, "").await;
    let s = &env.site;
    s.set("/", home(r#"<a href="/about">About</a>"#));
    s.set("/about", page("About", "<p>Ferraille et métaux.</p>"));
    check(&env).await;
    s.set(
        "/",
        home(r#"<a href="/about">About</a> <a href="/electronique">Électronique</a>"#),
    );
    let served = electronics_page().body;
    s.set("/electronique", electronics_page());
    check(&env).await;
    let high = findings(&env)
        .into_iter()
        .find(|f| f.severity >= Severity::High)
        .expect("a high finding");
    let config = env.config();
    // Retention first: the page bodies stay while their snapshot does.
    env.store()
        .gc(
            &pivotwatch::store::RetentionPolicy::default(),
            chrono::Utc::now(),
        )
        .expect("gc");
    let dir = env.dir.path().join("bundle");
    pivotwatch::export::evidence_bundle(&config, &env.store(), high.id, &dir).expect("bundle");
    let snap = env
        .store()
        .snapshot(high.evidence.snapshot.expect("snapshot"))
        .expect("read")
        .expect("snapshot");
    let responses = snap.fetch.expect("fetch metadata").responses;
    let (n, meta) = responses
        .iter()
        .enumerate()
        .find(|(_, r)| r.final_url.ends_with("/electronique"))
        .unwrap_or_else(|| panic!("no evidence of /electronique in {responses:?}"));
    assert_eq!(meta.status, 200);
    assert!(meta.body_blob.is_some(), "{meta:?}");
    let file = dir.join(format!("after/page-{n:03}.html"));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(bytes, served, "the page as served");
    assert!(dir.join("after/pages.txt").exists());
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("sums");
    assert!(sums.contains(&format!("after/page-{n:03}.html")), "{sums}");
    // The WARC export has a response record for the page, payload intact.
    let warc = env.dir.path().join("site.warc.gz");
    let mut out = Vec::new();
    pivotwatch::export::export(
        &config,
        &env.store(),
        pivotwatch::export::Format::Warc,
        &pivotwatch::export::Filter::default(),
        Some(&warc),
        &mut out,
    )
    .expect("export");
    let gz = std::fs::read(&warc).expect("warc");
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut text)
        .expect("gunzip");
    let text = String::from_utf8_lossy(&text);
    let at = text
        .find(&format!("WARC-Target-URI: {}", meta.final_url))
        .unwrap_or_else(|| panic!("no response record for {}", meta.final_url));
    assert!(text[at..].contains(&String::from_utf8_lossy(&served).into_owned()));
}
