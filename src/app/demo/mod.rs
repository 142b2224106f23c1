//! `pivotwatch demo`: the main job on a built-in scenario, offline.
//!
//! It serves a fictional scrap dealer's registry record and catalogue on
//! 127.0.0.1, checks them with the real pipeline (settings, watchlist,
//! fetch, extract, store, diff, detect, alert spool), switches the site to
//! its "after" state, checks again, and prints what an analyst would see.
//! Then `website.rs`: a second firm watched by its website alone
//! (`kind = "site"`), in its own folder (`DIR/website`).

mod scenario;
mod site;
mod website;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use site::{Page, Site};

use super::AppError;
use crate::config::{Config, LoadOptions};

/// Sets the scenario's pages for one state.
fn publish(site: &Site, after: bool, stamp: &str) {
    site.set("/rc/84213", Page::html(scenario::registry(stamp)));
    site.set(
        "/produits",
        Page::html(scenario::catalogue(1, after, stamp)),
    );
    site.set(
        "/produits?page=2",
        Page::html(scenario::catalogue(2, after, stamp)),
    );
}

/// Writes the demo's settings and watchlist into `dir`.
pub fn write_config(dir: &Path, base: &str) -> std::io::Result<(PathBuf, PathBuf)> {
    let wl_dir = dir.join("watchlists");
    std::fs::create_dir_all(&wl_dir)?;
    std::fs::write(
        wl_dir.join("demo.toml"),
        scenario::WATCHLIST.replace("{BASE}", base),
    )?;
    let settings = dir.join("pivotwatch.toml");
    std::fs::write(
        &settings,
        "# The demo's settings: the scenario is served on 127.0.0.1, so private\n\
         # addresses are allowed here (never do this for the open web).\n\
         [store]\npath = \"state\"\n\n[http]\nallow_private_addresses = true\ntimeout = \"10s\"\n\n\
         [email]\nfrom = \"pivotwatch <alerts@pivotwatch.example>\"\nspool_dir = \"spool\"\n\n\
         [[subscriber]]\nname = \"sanctions-desk\"\nto = [\"desk@watchdog.example\"]\nmin_severity = \"low\"\n",
    )?;
    Ok((settings, wl_dir))
}

/// How long `demo --serve` shows the "before" state.
pub const SERVE_FLIP_AFTER: std::time::Duration = std::time::Duration::from_secs(90);

/// `demo --serve`: serves the scenario's site on 127.0.0.1 until Ctrl-C
/// and leaves in `dir` a configuration for `pivotwatch run`: the demo
/// watchlist checked every minute, and a status endpoint on
/// 127.0.0.1:9187. The site shows the "before" state, then switches to the
/// "after" state (processors appear) [`SERVE_FLIP_AFTER`] later, so a
/// daemon started meanwhile raises the finding on its own.
pub async fn serve(dir: Option<&Path>, out: &mut impl Write) -> Result<u8, AppError> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("pivotwatch-demo-{}", std::process::id())),
    };
    let site = Site::start().await?;
    publish(&site, false, "2026-11-27 09:00");
    let (settings, wl_dir) = write_config(&dir, &site.base())?;
    let wl = wl_dir.join("demo.toml");
    let text = std::fs::read_to_string(&wl)?;
    std::fs::write(
        &wl,
        text.replace("schedule = \"0 */6 * * *\"", "schedule = \"* * * * *\""),
    )?;
    let mut s = std::fs::read_to_string(&settings)?;
    s.push_str(
        "\n# For `pivotwatch run` against the served demo site.\n[status]\nlisten = \"127.0.0.1:9187\"\n\n[daemon]\njitter = \"5s\"\n",
    );
    std::fs::write(&settings, s)?;
    writeln!(
        out,
        "pivotwatch demo site served at {} (Ctrl-C stops it)\n\
         configuration written to {}: the demo watchlist checked every minute, status on 127.0.0.1:9187\n\n\
         In another terminal:\n  cd {} && pivotwatch run\n\
         then watch http://127.0.0.1:9187/ or run `pivotwatch findings` there.\n\n\
         The catalogue changes (processors appear) in {} s.",
        site.base(),
        dir.display(),
        dir.display(),
        SERVE_FLIP_AFTER.as_secs()
    )?;
    out.flush()?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    tokio::select! {
        _ = &mut ctrl_c => return Ok(0),
        _ = tokio::time::sleep(SERVE_FLIP_AFTER) => {}
    }
    publish(&site, true, "2026-11-28 09:00");
    writeln!(
        out,
        "The catalogue changed: the daemon sees it at its next check (within a minute or two)."
    )?;
    out.flush()?;
    let _ = ctrl_c.await;
    Ok(0)
}

/// Runs the demo, printing to `out`.
pub async fn run(dir: Option<&Path>, out: &mut impl Write) -> Result<u8, AppError> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("pivotwatch-demo-{}", std::process::id())),
    };
    // A fresh state each run, so the story is the same every time.
    for old in ["state", "spool"] {
        let p = dir.join(old);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
    }
    let site = Site::start().await?;
    publish(&site, false, "2026-11-27 09:00");
    let (settings, wl_dir) = write_config(&dir, &site.base())?;
    let config = Arc::new(Config::load(&LoadOptions {
        config: Some(settings),
        watchlists: Some(wl_dir),
        state_dir: None,
        check_address: Some(crate::alert::check_address),
    })?);

    writeln!(
        out,
        "pivotwatch demo: Atlas Métaux SARL, registered in Tangier for wholesale of waste and scrap (NACE 46.77)"
    )?;
    writeln!(
        out,
        "site served at {}; state, watchlist and mail under {}\n",
        site.base(),
        dir.display()
    )?;
    writeln!(
        out,
        "== 1. First check: the registry record and the catalogue (scrap metal only)"
    )?;
    let all = || -> Vec<(String, String)> {
        config
            .sources()
            .map(|(e, s)| (e.id.clone(), s.id.clone()))
            .collect()
    };
    let open = || {
        crate::store::Store::open_waiting(
            &config.settings.state_dir,
            std::time::Duration::from_secs(5),
        )
    };
    super::once_with_store(open()?, config.clone(), all(), true, false, out).await?;

    writeln!(
        out,
        "\n== 2. The site changes: processors appear in the catalogue, rows are reordered, timestamps move"
    )?;
    publish(&site, true, "2026-11-28 09:00");
    let code = super::once_with_store(open()?, config.clone(), all(), true, false, out).await?;

    let store = open()?;
    let ids = store.history("atlas-metaux/catalogue")?;
    if let [.., a, b] = ids.as_slice() {
        writeln!(
            out,
            "\n== 3. What changed in the catalogue (pivotwatch diff atlas-metaux/catalogue)"
        )?;
        if let (Some(a), Some(b)) = (store.snapshot(*a)?, store.snapshot(*b)?) {
            for c in crate::diff::diff(&a.record, &b.record) {
                writeln!(out, "  {}", c.describe())?;
            }
        }
    }
    writeln!(out, "\n== 4. Findings (pivotwatch findings)")?;
    let findings = store.findings()?;
    for f in &findings {
        crate::read::print_finding(f, out)?;
    }
    writeln!(out, "\n== 5. The alert email")?;
    let sent = store.sent_deliveries()?;
    let spool = &config.settings.email.spool_dir;
    let mut files: Vec<PathBuf> = std::fs::read_dir(spool)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    writeln!(
        out,
        "{} alert(s) delivered; {} .eml file(s) in {}",
        sent.len(),
        files.len(),
        spool.display()
    )?;
    if let Some(f) = findings.last() {
        let entity = config.entity(&f.entity);
        for p in &files {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            if text.contains(&format!("X-Pivotwatch-Finding: {} ", f.id)) {
                writeln!(out, "file: {}\n", p.display())?;
                let name = entity.map(|e| e.name.as_str()).unwrap_or(&f.entity);
                for line in text.lines().take_while(|l| !l.is_empty()) {
                    if [
                        "From:",
                        "To:",
                        "Message-ID:",
                        "Date:",
                        "List-Id:",
                        "Auto-Submitted:",
                    ]
                    .iter()
                    .any(|h| line.starts_with(h))
                    {
                        writeln!(out, "{line}")?;
                    }
                }
                writeln!(out, "Subject: {}\n", crate::alert::subject(name, f))?;
                write!(out, "{}", crate::alert::text_body(name, f))?;
            }
        }
    }
    writeln!(out, "\n== 6. Why (pivotwatch explain atlas-metaux)")?;
    crate::read::explain(&config, &store, "atlas-metaux", false, out)?;
    drop(store);
    let site_code = website::run(&dir.join("website"), out).await?;
    Ok(code.max(site_code))
}

/// Every HTML page the demo serves (both states), for the extractors'
/// differential test (`tests/it/stream_equal.rs`).
#[doc(hidden)]
pub fn html_pages() -> Vec<String> {
    let mut v = Vec::new();
    for after in [false, true] {
        v.push(scenario::registry(if after { "2" } else { "1" }));
        v.push(scenario::catalogue(1, after, "1"));
        v.push(scenario::catalogue(2, after, "1"));
    }
    v
}

/// The demo's watchlist text, `{BASE}` standing for the site's address.
#[doc(hidden)]
pub const WATCHLIST: &str = scenario::WATCHLIST;
