//! The demo's second scenario: a firm watched by its website alone
//! (`kind = "site"`, zero selectors). Rif Recyclage, a scrap dealer, has
//! a home page, an "about" page and a blog post on Intel's results (a
//! weak mention); then a new "électronique" page lists Western parts with
//! prices, and the site source raises a HIGH finding and its email.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::{Page, Site};
use crate::app::AppError;
use crate::config::{Config, LoadOptions};
use crate::record::Severity;

const WATCHLIST: &str = r#"# The demo's website scenario: one line per firm, its website.
[watchlist]
name = "demo-site"
description = "Firms watched by their website alone"

[[entity]]
id = "rif-recyclage"
name = "Rif Recyclage SARL"
jurisdiction = "MA"
activity = ["NACE:46.77"]                 # wholesale of waste and scrap

[[entity.source]]
id = "site"
kind = "site"                             # no selectors: discovery + mentions
url = "{BASE}/"
"#;

fn shell(title: &str, body: &str, electronics: bool) -> Page {
    let extra = if electronics {
        r#" <a href="/electronique">Électronique</a>"#
    } else {
        ""
    };
    Page::html(format!(
        r#"<!doctype html><html lang="fr"><head><title>{title} · Rif Recyclage</title>
<meta name="description" content="Rif Recyclage, ferraille et métaux non ferreux à Tanger"></head>
<body><nav><a href="/">Accueil</a> <a href="/a-propos">À propos</a> <a href="/blog/cours-du-cuivre">Blog</a>{extra}</nav>
<main>{body}</main><footer>Rif Recyclage SARL · Zone franche de Tanger · RC 91377</footer></body></html>"#
    ))
}

/// The site before (`electronics = false`) or after the new page.
fn publish(site: &Site, electronics: bool) {
    site.set(
        "/",
        shell(
            "Accueil",
            "<h1>Rif Recyclage</h1><p>Achat et vente de ferraille, cuivre, laiton et aluminium. Enlèvement sur site.</p>",
            electronics,
        ),
    );
    site.set(
        "/a-propos",
        shell(
            "À propos",
            "<h1>À propos</h1><p>Depuis 2009, nous recyclons les métaux ferreux et non ferreux.</p>",
            electronics,
        ),
    );
    site.set(
        "/blog/cours-du-cuivre",
        shell(
            "Blog",
            "<article><h1>Le cuivre et les semi-conducteurs</h1><p>Intel a publié ses résultats trimestriels : la demande de cuivre des fonderies reste forte.</p></article>",
            electronics,
        ),
    );
    site.set(
        "/robots.txt",
        Page {
            content_type: "text/plain".into(),
            ..Page::html(format!(
                "User-agent: *\nAllow: /\nSitemap: {}\n",
                site.url("/sitemap.xml")
            ))
        },
    );
    let mut urls = vec!["/", "/a-propos", "/blog/cours-du-cuivre"];
    if electronics {
        urls.push("/electronique");
        site.set(
            "/electronique",
            shell(
                "Électronique",
                r#"<h1>Composants électroniques</h1>
<p>Processeurs et circuits de fabricants américains et européens, disponibles en stock.</p>
<table><tr><th>Référence</th><th>Fabricant</th><th>Prix</th></tr>
<tr><td>TMS320F28335PGFA</td><td>Texas Instruments</td><td>14,90 €</td></tr>
<tr><td>XC7A35T-1CPG236C</td><td>Xilinx</td><td>39,00 €</td></tr>
<tr><td>MIMXRT1062DVJ6A</td><td>NXP</td><td>12,40 €</td></tr>
</table><button>Ajouter au panier</button>"#,
                electronics,
            ),
        );
    }
    let locs: String = urls
        .iter()
        .map(|u| format!("<url><loc>{}</loc></url>", site.url(u)))
        .collect();
    site.set(
        "/sitemap.xml",
        Page {
            content_type: "application/xml".into(),
            ..Page::html(format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>"#
            ))
        },
    );
}

/// Runs the website scenario under `dir` (its own state, watchlist and
/// spool), printing to `out`.
pub(super) async fn run(dir: &Path, out: &mut impl Write) -> Result<u8, AppError> {
    for old in ["state", "spool"] {
        let p = dir.join(old);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
    }
    let site = Site::start().await?;
    publish(&site, false);
    let (settings, wl_dir) = super::write_config(dir, &site.base())?;
    std::fs::remove_file(wl_dir.join("demo.toml"))?;
    std::fs::write(
        wl_dir.join("demo-site.toml"),
        WATCHLIST.replace("{BASE}", &site.base()),
    )?;
    let config = Arc::new(Config::load(&LoadOptions {
        config: Some(settings),
        watchlists: Some(wl_dir),
        state_dir: None,
        check_address: Some(crate::alert::check_address),
    })?);
    let all: Vec<(String, String)> = config
        .sources()
        .map(|(e, s)| (e.id.clone(), s.id.clone()))
        .collect();
    let open = || {
        crate::store::Store::open_waiting(
            &config.settings.state_dir,
            std::time::Duration::from_secs(5),
        )
    };
    writeln!(
        out,
        "\n== 7. A firm watched by its website alone: Rif Recyclage SARL (scrap, NACE 46.77), kind = \"site\", zero selectors\n\
         site at {}; its state, watchlist and mail under {}",
        site.base(),
        dir.display()
    )?;
    writeln!(
        out,
        "-- First check: home, about, a blog post on Intel's results (a weak mention: news post)"
    )?;
    super::super::once_with_store(open()?, config.clone(), all.clone(), true, false, out).await?;
    writeln!(
        out,
        "-- A new page appears: \"Électronique\", Western parts with prices"
    )?;
    publish(&site, true);
    let code =
        super::super::once_with_store(open()?, config.clone(), all, true, false, out).await?;
    let store = open()?;
    let findings = store.findings()?;
    writeln!(out, "-- Findings of the website")?;
    for f in &findings {
        crate::read::print_finding(f, out)?;
    }
    if let Some(f) = findings.iter().find(|f| f.severity >= Severity::High) {
        let name = config
            .entity(&f.entity)
            .map(|e| e.name.as_str())
            .unwrap_or(&f.entity);
        writeln!(
            out,
            "-- The alert email\nSubject: {}\n",
            crate::alert::subject(name, f)
        )?;
        write!(out, "{}", crate::alert::text_body(name, f))?;
    }
    drop(store);
    Ok(code)
}
