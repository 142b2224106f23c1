//! Whole-site sources: the mention scan's throughput (criterion, pages
//! per second on a realistic 20 KB product page and a 6 KB blog post),
//! and a walk of a 200-page site on 127.0.0.1 (first pass, then a recheck
//! of the unchanged site) with its CPU per page and the store's growth.
//!
//! `cargo bench --bench site` (`-- --walk-only` skips criterion).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use pivotwatch::app::demo::{Page, Site};
use pivotwatch::check::Checker;
use pivotwatch::classify::Reference;
use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::site::{Scanner, scan_page};
use pivotwatch::store::Store;

const WESTERN: &[(&str, &str)] = &[
    ("TMS320F28335PGFA", "Texas Instruments"),
    ("XC7A35T-1CPG236C", "Xilinx"),
    ("STM32F407VGT6", "STMicroelectronics"),
    ("MIMXRT1062DVJ6A", "NXP"),
    ("ADSP-21489BSWZ-4B", "Analog Devices"),
];
const LOCAL: &[(&str, &str)] = &[
    ("GD32F103C8T6", "GigaDevice"),
    ("CH340G", "WCH"),
    ("SS34", "MDD"),
    ("MMBT3904", "Jiangsu Changjiang"),
];

/// A product listing page of `rows` rows, with menu, footer and partners
/// strip, about 20 KB at 60 rows.
fn product_page(i: usize, rows: usize) -> String {
    let mut t = String::from(
        "<!doctype html><html lang=fr><head><title>Composants · Atlas</title>\
         <meta name=description content=\"Composants électroniques et métaux\">\
         <script type=\"application/ld+json\">{\"@type\":\"Organization\",\"name\":\"Atlas\"}</script></head>\
         <body><nav class=menu><a href=/>Accueil</a><a href=/metaux>Métaux</a><a href=/blog>Blog</a></nav><main><h1>Composants</h1><table>",
    );
    for r in 0..rows {
        let (p, m) = if (i + r) % 7 == 0 {
            WESTERN[(i + r) % WESTERN.len()]
        } else {
            LOCAL[(i + r) % LOCAL.len()]
        };
        t.push_str(&format!(
            "<tr><td><a href=\"/p/{i}/{r}\">{p}</a></td><td>{m}</td><td>Stock {r}</td><td>{},{:02} €</td><td><button>Ajouter au panier</button></td></tr>",
            r + 1,
            (r * 7) % 100
        ));
    }
    t.push_str("</table></main><div class=partners><img alt=Intel src=a.png><img alt=\"Texas Instruments\" src=b.png></div><footer>© Atlas Métaux, Tanger</footer></body></html>");
    t
}

fn blog_page() -> String {
    let para = "<p>Le cours du cuivre a progressé cette semaine; Intel a publié ses résultats et la demande de laiton reste ferme dans la zone franche.</p>";
    format!(
        "<html><head><title>Blog</title></head><body><article><h1>Marchés</h1>{}</article></body></html>",
        para.repeat(40)
    )
}

fn bench_scan(c: &mut Criterion, scanner: &Scanner) {
    let url = url::Url::parse("https://atlas.example.ma/composants").expect("url");
    let blog_url = url::Url::parse("https://atlas.example.ma/blog/marches").expect("url");
    let page = product_page(3, 60);
    let blog = blog_page();
    let mut g = c.benchmark_group("site_scan");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("product_page_{}KB", page.len() / 1024), |b| {
        b.iter(|| black_box(scan_page(scanner, &url, black_box(&page), false)))
    });
    g.bench_function(format!("blog_post_{}KB", blog.len() / 1024), |b| {
        b.iter(|| black_box(scan_page(scanner, &blog_url, black_box(&blog), false)))
    });
    g.finish();
    c.bench_function("site_scanner_build", |b| {
        b.iter(|| black_box(Scanner::new(scanner_reference())))
    });
}

fn scanner_reference() -> Arc<Reference> {
    static R: std::sync::OnceLock<Arc<Reference>> = std::sync::OnceLock::new();
    R.get_or_init(|| Arc::new(Reference::embedded().expect("reference")))
        .clone()
}

fn self_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match (f.get(10), f.get(11)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata();
            match m {
                Ok(m) if m.is_dir() => n += dir_size(&e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

/// A 200-page site walked twice on loopback; prints pages/s, CPU per page
/// (the whole process: client, loopback server, store) and store growth.
fn walk() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let site = Site::start().await.expect("site");
        let pages = 200;
        let mut home = String::from("<html><body><h1>Atlas</h1>");
        for i in 1..pages {
            home.push_str(&format!("<a href=\"/c/{i}\">{i}</a> "));
            site.set(&format!("/c/{i}"), Page::html(product_page(i, 60)));
        }
        home.push_str("</body></html>");
        site.set("/", Page::html(home));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("watchlists")).expect("dir");
        std::fs::write(
            dir.path().join("pivotwatch.toml"),
            "[store]\npath = \"state\"\n[http]\nallow_private_addresses = true\nper_host_interval = \"0s\"\nper_host_concurrency = 8\n[email]\nfrom = \"a <a@b.test>\"\nspool_dir = \"spool\"\n",
        )
        .expect("settings");
        std::fs::write(
            dir.path().join("watchlists/w.toml"),
            format!(
                "[[entity]]\nid = \"atlas\"\nname = \"Atlas\"\nactivity = [\"NACE:46.77\"]\n[[entity.source]]\nid = \"site\"\nkind = \"site\"\nurl = \"{}/\"\nmax_pages = {pages}\n",
                site.base()
            ),
        )
        .expect("watchlist");
        let config = Arc::new(
            Config::load(&LoadOptions {
                config: Some(dir.path().join("pivotwatch.toml")),
                watchlists: Some(dir.path().join("watchlists")),
                state_dir: None,
                check_address: Some(pivotwatch::alert::check_address),
            })
            .expect("config"),
        );
        let store = Store::open(&config.settings.state_dir).expect("store");
        let checker = Checker::new(config.clone(), store.clone()).expect("checker");
        let ids = vec![("atlas".to_string(), "site".to_string())];
        // Reference and matchers built before timing (a daemon has them).
        checker.reference().await.expect("reference");
        let mut growth = Vec::new();
        for pass in ["first pass", "recheck", "recheck", "recheck"] {
            let size0 = dir_size(&config.settings.state_dir);
            let (t0, c0) = (Instant::now(), self_cpu());
            let r = checker.check_all(&ids).await;
            store.flush().expect("flush");
            let (wall, cpu) = (t0.elapsed().as_secs_f64(), self_cpu() - c0);
            let size1 = dir_size(&config.settings.state_dir);
            let n = pages as f64;
            println!(
                "site walk, {pass}: {} ({} changes), {pages} pages in {wall:.2} s = {:.0} pages/s, CPU {:.2} ms/page, store {} -> {} bytes",
                r[0].status,
                r[0].change_count,
                n / wall,
                cpu * 1000.0 / n,
                size0,
                size1
            );
            if pass == "recheck" {
                growth.push(size1 as i64 - size0 as i64);
            }
        }
        println!("store growth per unchanged check (bytes, 3 rechecks): {growth:?}");
    });
}

fn main() {
    walk();
    if std::env::args().any(|a| a == "--walk-only") {
        return;
    }
    let scanner = Scanner::new(scanner_reference());
    let mut c = Criterion::default().configure_from_args();
    bench_scan(&mut c, &scanner);
    c.final_summary();
}
