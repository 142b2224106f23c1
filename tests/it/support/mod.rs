//! Shared test fixtures: a temp folder with settings and a watchlist
//! pointing at a real loopback site.
#![allow(dead_code)]

pub mod crash_loop;
pub mod process;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;

use pivotwatch::app::demo::Site;
use pivotwatch::check::{CheckReport, Checker};
use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::store::Store;

/// How long a test waits for sled to release a store closed a moment ago.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub site: Site,
}

pub const SETTINGS: &str = r#"
[store]
path = "state"
[http]
allow_private_addresses = true
timeout = "5s"
max_body = "256KiB"
[email]
from = "pivotwatch <alerts@pivotwatch.test>"
spool_dir = "spool"
[[subscriber]]
name = "desk"
to = ["desk@watchdog.test"]
min_severity = "info"
"#;

impl Env {
    pub async fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            site: Site::start().await.expect("site"),
        }
    }

    /// Writes settings (with `{BASE}` replaced) and one watchlist.
    pub fn write(&self, settings: &str, watchlist: &str) {
        let base = self.site.base();
        std::fs::create_dir_all(self.dir.path().join("watchlists")).unwrap();
        std::fs::write(
            self.dir.path().join("pivotwatch.toml"),
            settings.replace("{BASE}", &base),
        )
        .unwrap();
        std::fs::write(
            self.dir.path().join("watchlists/test.toml"),
            watchlist.replace("{BASE}", &base),
        )
        .unwrap();
    }

    pub fn opts(&self) -> LoadOptions {
        LoadOptions {
            config: Some(self.dir.path().join("pivotwatch.toml")),
            watchlists: Some(self.dir.path().join("watchlists")),
            state_dir: None,
            check_address: Some(pivotwatch::alert::check_address),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::new(Config::load(&self.opts()).unwrap_or_else(|e| panic!("config: {e}")))
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn eml_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.spool())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Opens the store, checks every source once, delivers, closes the store.
    pub async fn once(&self) -> Vec<CheckReport> {
        let config = self.config();
        let store = Store::open_waiting(&config.settings.state_dir, WAIT).expect("store");
        let checker = Checker::new(config.clone(), store.clone()).expect("checker");
        let ids: Vec<(String, String)> = config
            .sources()
            .map(|(e, s)| (e.id.clone(), s.id.clone()))
            .collect();
        let reports = checker.check_all(&ids).await;
        pivotwatch::alert::deliver_pending(&store, &config)
            .await
            .expect("deliver");
        reports
    }

    pub fn store(&self) -> Store {
        Store::open_waiting(&self.dir.path().join("state"), WAIT).expect("store")
    }
}

pub fn catalogue_page(
    rows: &[(&str, &str, &str, &str)],
    stamp: &str,
    next: Option<&str>,
) -> String {
    let body: String = rows
        .iter()
        .map(|(n, m, p, price)| {
            format!("<tr><td class=\"n\">{n}</td><td class=\"m\">{m}</td><td class=\"p\">{p}</td><td class=\"price\">{price}</td></tr>")
        })
        .collect();
    let next = next
        .map(|n| format!("<a class=\"next\" href=\"{n}\">next</a>"))
        .unwrap_or_default();
    format!(
        "<html><head><title>Shop</title><script>var t='{stamp}';</script></head><body>\
         <div class=\"banner\">Updated {stamp}</div><table id=\"products\"><tbody>{body}</tbody></table>{next}\
         <footer>{stamp}</footer></body></html>"
    )
}

pub const CATALOGUE_WATCHLIST: &str = include_str!("../../fixtures/catalogue.toml");
