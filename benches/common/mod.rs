//! Shared by the criterion benchmarks: the scale harness's pages and the
//! watchlist specs that select from them, loaded through the real config
//! loader so the selectors are exactly those of `benches/scale`.

#![allow(dead_code)]

#[path = "../scale/pages.rs"]
pub mod pages;

use pivotwatch::config::{Config, LoadOptions, Source};

/// The catalogue and registry sources of entity 0 (same selectors for
/// every entity), loaded from a temporary watchlist.
pub fn specs() -> (Source, Source) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wl = dir.path().join("watchlists");
    std::fs::create_dir_all(&wl).expect("mkdir");
    let mut s = String::from("[watchlist]\nname = \"bench\"\n");
    s.push_str(&pages::entity_toml("http://127.0.0.1:9", 0));
    std::fs::write(wl.join("bench.toml"), s).expect("write");
    let cfg = dir.path().join("pivotwatch.toml");
    std::fs::write(&cfg, "[http]\nallow_private_addresses = true\n").expect("write");
    let config = Config::load(&LoadOptions {
        config: Some(cfg),
        watchlists: Some(wl),
        state_dir: Some(dir.path().join("state")),
        check_address: Some(pivotwatch::alert::check_address),
    })
    .expect("bench watchlist loads");
    let mut it = config.sources().map(|(_, s)| s.clone());
    let cat = it.next().expect("catalogue");
    let reg = it.next().expect("registry");
    (cat, reg)
}

/// `count` pages of one kind (catalogue when `kind == 0`), generation 0.
pub fn bodies(kind: usize, count: usize) -> Vec<String> {
    let model = pages::Model {
        seed: "pivotwatch".into(),
        n: 2 * count,
        fraction: 0.0,
        noise_fraction: 0.0,
    };
    (0..count)
        .map(|e| model.render(2 * e + kind, &pages::PageState::default()))
        .collect()
}
