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
        check_address: Some(pivotwatch::alert::check_address),
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

/// Mail addresses are checked while loading, by alert's parser passed in
/// `LoadOptions::check_address` (config itself knows no mail crate): each
/// bad one is an error at its `path:line:col`, reported with the others.
#[test]
fn bad_mail_addresses_are_errors_at_their_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wl = dir.path().join("watchlists");
    std::fs::create_dir_all(&wl).expect("mkdir");
    std::fs::write(
        wl.join("a.toml"),
        format!(
            "[watchlist]\nname = \"a\"\nmaintainers = [\"analyst at example\"]\n{}",
            registry_source("a1", "")
        ),
    )
    .expect("write a");
    let settings = dir.path().join("pivotwatch.toml");
    std::fs::write(
        &settings,
        "[email]\nfrom = \"pivotwatch <alerts@@example>\"\n[[subscriber]]\nname = \"desk\"\nto = [\"desk@watchdog.example\", \"no address\"]\n",
    )
    .expect("write settings");
    let opts = |check| LoadOptions {
        config: Some(settings.clone()),
        watchlists: Some(wl.clone()),
        state_dir: Some(dir.path().join("state")),
        check_address: check,
    };
    let err = match Config::load(&opts(Some(pivotwatch::alert::check_address))) {
        Ok(_) => panic!("bad addresses were accepted"),
        Err(e) => e.to_string(),
    };
    for (place, address) in [
        ("pivotwatch.toml:2:8", "pivotwatch <alerts@@example>"),
        ("pivotwatch.toml:5:32", "no address"),
        ("a.toml:3:16", "analyst at example"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("{address:?}")))
            .unwrap_or_else(|| panic!("{address:?} not reported in\n{err}"));
        assert!(line.contains(place), "{line}");
        assert!(line.contains("invalid mail address"), "{line}");
    }
    assert_eq!(err.lines().count(), 3, "{err}");
    // Without a check, the load does not look at addresses (alert refuses
    // a bad one when it builds the mail).
    assert!(Config::load(&opts(None)).is_ok());
}
