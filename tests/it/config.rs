//! Loading: sources that repeat an extraction spec share one compiled copy.

use std::sync::Arc;

use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::extract::ExtractSpec;

fn registry_source(entity: &str, attr_line: &str) -> String {
    format!(
        r##"
[[entity]]
id = "{entity}"
name = "{entity}"

[[entity.source]]
id = "registry"
kind = "registry"
url = "https://registry.example/{entity}"
[entity.source.fields]
name = "#company-profile .name"
activity = {{ selector = "#company-profile .activity" {attr_line} }}
"##
    )
}

#[test]
fn identical_specs_are_shared_across_files_and_different_ones_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wl = dir.path().join("watchlists");
    std::fs::create_dir_all(&wl).expect("mkdir");
    std::fs::write(
        wl.join("a.toml"),
        format!(
            "{}{}",
            registry_source("a1", ""),
            registry_source("a2", ", attr = \"data-code\"")
        ),
    )
    .expect("write a");
    std::fs::write(wl.join("b.toml"), registry_source("b1", "")).expect("write b");
    let settings = dir.path().join("pivotwatch.toml");
    std::fs::write(&settings, "[http]\ntimeout = \"5s\"\n").expect("write settings");
    let config = Config::load(&LoadOptions {
        config: Some(settings),
        watchlists: Some(wl),
        state_dir: Some(dir.path().join("state")),
    })
    .unwrap_or_else(|e| panic!("config: {e}"));

    let spec = |entity: &str| {
        config
            .sources()
            .find(|(e, _)| e.id == entity)
            .map(|(_, s)| s.spec.clone())
            .unwrap_or_else(|| panic!("no source for {entity}"))
    };
    let (a1, a2, b1) = (spec("a1"), spec("a2"), spec("b1"));
    assert!(Arc::ptr_eq(&a1, &b1), "same fields in two files: one spec");
    assert!(!Arc::ptr_eq(&a1, &a2), "an attr makes a different spec");
    let ExtractSpec::Html(h) = &*a2 else {
        panic!("html spec expected")
    };
    let activity = h
        .fields
        .iter()
        .find(|(n, _)| n == "activity")
        .map(|(_, f)| f)
        .expect("activity field");
    assert_eq!(activity.attr.as_deref(), Some("data-code"));
    assert_eq!(activity.source, "#company-profile .activity");
}
