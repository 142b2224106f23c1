//! The binary as users run it: real processes, exit codes, output.

use std::path::Path;

use crate::support::process::{at, pivotwatch};

const BROKEN: &str = include_str!("../fixtures/broken.toml");

#[test]
fn check_reports_every_error_with_its_location_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchlists")).unwrap();
    std::fs::write(dir.path().join("watchlists/broken.toml"), BROKEN).unwrap();
    let out = pivotwatch(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = "watchlists/broken.toml";
    let expect = [
        (at(p, BROKEN, "\"0 30 9"), "6 fields"),
        (at(p, BROKEN, "\"Mars/Olympus\""), "unknown timezone"),
        (at(p, BROKEN, "\"46.77\""), "SCHEME:CODE"),
        (at(p, BROKEN, "\"ftp://"), "scheme \"ftp\""),
        (at(p, BROKEN, "\"table tr[\""), "does not compile"),
        (at(p, BROKEN, "\"data/name\""), "must start with '/'"),
    ];
    for (loc, msg) in &expect {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("{loc}: ")))
            .unwrap_or_else(|| panic!("no error at {loc} in:\n{err}"));
        assert!(line.contains(msg), "{line} should say {msg}");
    }
    // The duplicate id points at the second declaration.
    let second = BROKEN.rfind("\"dup\"").unwrap();
    let line = BROKEN[..second].matches('\n').count() + 1;
    assert!(
        err.contains(&format!("{p}:{line}:6: duplicate entity id \"dup\"")),
        "{err}"
    );
    assert!(err.contains("configuration error(s)"));
}

#[test]
fn check_reports_toml_syntax_errors_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchlists")).unwrap();
    std::fs::write(
        dir.path().join("watchlists/a.toml"),
        "[watchlist]\nname = \"a\"\nschedul = \"0 * * * *\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("watchlists/b.toml"),
        "[watchlist\nname = \"b\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        "[http]\ntimeout = \"soon\"\n\n[email]\nfrom = \"x@y.example\"\nreply_to = \"z\"\n\n[store]\npath = 5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("watchlists/c.toml"),
        "[rules.nope]\nenabled = false\n\n[[rule]]\nid = \"x\"\npattern = \"(unclosed\"\n",
    )
    .unwrap();
    let out = pivotwatch(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pivotwatch.toml:2:11: invalid duration \"soon\""),
        "{err}"
    );
    // Every table of the settings file is checked, not just the first bad one.
    assert!(
        err.lines()
            .any(|l| l.starts_with("pivotwatch.toml:6:1:") && l.contains("reply_to")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("pivotwatch.toml:9:8:")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("watchlists/a.toml:3:1:") && l.contains("schedul")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("watchlists/b.toml:1:")),
        "{err}"
    );
    assert!(
        err.contains("watchlists/c.toml:1:8: unknown rule `nope`"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("watchlists/c.toml:6:11: invalid regular expression")),
        "{err}"
    );
}

#[test]
fn shipped_watchlists_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = pivotwatch(root, &["--config", "pivotwatch.example.toml", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

#[test]
fn demo_catches_the_pivot_and_writes_the_email() {
    let dir = tempfile::tempdir().unwrap();
    let out = pivotwatch(dir.path(), &["demo", "--dir", "d"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TMS320F28335PGFA"), "{stdout}");
    assert!(stdout.contains("Subject: [pivotwatch] "), "{stdout}");
    let emls = std::fs::read_dir(dir.path().join("d/spool"))
        .unwrap()
        .count();
    assert!(emls >= 1);
}

#[test]
fn once_json_history_diff_and_findings_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The demo leaves a state with two snapshots and findings behind.
    assert!(pivotwatch(d, &["demo", "--dir", "."]).status.success());
    let flags = ["--config", "pivotwatch.toml", "--watchlists", "watchlists"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = flags.to_vec();
        a.extend_from_slice(extra);
        pivotwatch(d, &a)
    };
    // The demo's site is gone: every source fails, exit 1, JSON names the error.
    let out = run(&["once", "--json", "--no-deliver"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["status"], "failed");
        assert!(l["error"].as_str().is_some_and(|e| !e.is_empty()));
        for k in ["entity", "source", "url", "changes", "findings"] {
            assert!(l.get(k).is_some(), "missing {k} in {l}");
        }
    }
    let out = run(&["history", "atlas-metaux/catalogue", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = run(&["diff", "atlas-metaux/catalogue", "--json"]);
    let changes: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c["kind"] == "item_added" && c["item"] == "TMS320F28335PGFA"),
        "{changes:?}"
    );
    let out = run(&["findings", "--json", "--since", "1h"]);
    let f: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!f.is_empty());
    for k in [
        "id",
        "entity",
        "source",
        "rule",
        "severity",
        "summary",
        "created_at",
        "evidence",
    ] {
        assert!(f[0].get(k).is_some(), "finding lacks {k}");
    }
    let out = run(&["diff", "atlas-metaux/nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reports_invalid_reference_data_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
    std::fs::create_dir_all(dir.path().join("ref")).unwrap();
    std::fs::write(
        dir.path().join("ref/chpl.csv"),
        "hs6,tier,description\n854231,9,Processors\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        "[reference]\ndir = \"ref\"\n",
    )
    .unwrap();
    let out = pivotwatch(dir.path(), &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("chpl.csv:2"), "{err}");
}

#[test]
fn probe_shows_what_an_extractor_yields_on_a_live_page() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site = rt.block_on(pivotwatch::app::demo::Site::start()).unwrap();
    site.set(
        "/p",
        pivotwatch::app::demo::Page::html(
            "<html><body><h1 class=n> Atlas  Métaux </h1><a class=site href=\"/home\">x</a>\
             <table><tr><td class=pn>TMS320F28335PGFA</td><td class=b>TI</td></tr>\
             <tr><td class=pn>EP4CE22F17C8N</td><td class=b>Intel</td></tr></table></body></html>",
        ),
    );
    let url = site.url("/p");
    let dir = tempfile::tempdir().unwrap();
    let out = pivotwatch(
        dir.path(),
        &[
            "probe",
            &url,
            "--allow-private-addresses",
            "--field",
            "name=h1.n",
            "--field",
            "site=a.site@href",
            "--rows",
            "table tr",
            "--col",
            "part_number=td.pn",
            "--col",
            "manufacturer=td.b",
            "--json",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["fields"]["name"], "Atlas Métaux");
    assert_eq!(v["fields"]["site"], format!("{}/home", site.base()));
    assert_eq!(v["items"]["TMS320F28335PGFA"]["manufacturer"], "TI");
    assert_eq!(v["items"].as_object().unwrap().len(), 2);
    // Without the flag the guard refuses the loopback address.
    let out = pivotwatch(dir.path(), &["probe", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_private_addresses"));
    drop(rt);
}
