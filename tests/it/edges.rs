//! Day-one edges, as a user meets them: the real binary as a child process
//! against loopback sites, with pipes, broken watchlists, hostile text,
//! robots.txt and per-host limits.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::pivotwatch as run;
use crate::support::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::app::demo::Page;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pivotwatch"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A folder the demo left: a store with findings, `pivotwatch.toml` and
/// `watchlists/demo.toml` (its site is gone, so checks now fail).
fn demo_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["demo", "--dir", "."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir
}

const FLAGS: [&str; 4] = ["--config", "pivotwatch.toml", "--watchlists", "watchlists"];

fn with_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a: Vec<&str> = FLAGS.to_vec();
    a.extend_from_slice(extra);
    a
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn a_closed_pipe_ends_read_commands_quietly_with_exit_0() {
    let dir = demo_state();
    let d = dir.path();
    for args in [
        with_flags(&["findings"]),
        with_flags(&["findings", "--json"]),
        with_flags(&["history", "atlas-metaux"]),
        with_flags(&["diff", "atlas-metaux/catalogue"]),
        with_flags(&["explain", "atlas-metaux"]),
    ] {
        // The reader is gone before the first write: every write fails
        // with EPIPE (Rust ignores SIGPIPE), deterministically.
        let mut child = bin()
            .current_dir(d)
            .args(&args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
    // `findings | head -1`: read one line, then close; repeated, since
    // whether the rest was already written is a race.
    for i in 0..12 {
        let mut child = bin()
            .current_dir(d)
            .args(with_flags(&["findings"]))
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with('#'), "{first}");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "run {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "run {i}");
    }
}

#[test]
fn once_into_a_closed_pipe_still_stores_and_delivers() {
    let rt = rt();
    let env = rt.block_on(Env::new());
    env.site.set(
        "/shop",
        Page::html(catalogue_page(
            &[("DSP", "Texas Instruments", "TMS320F28335PGFA", "1")],
            "a",
            None,
        )),
    );
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let mut child = bin()
        .current_dir(env.dir.path())
        .args(with_flags(&["once"]))
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert!(!env.eml_files().is_empty(), "the alert was not delivered");
}

#[test]
fn log_lines_name_entity_and_source_and_carry_no_colour_on_a_pipe() {
    let rt = rt();
    let env = rt.block_on(Env::new());
    // Nothing listens on the site's /gone page's host once it is dropped:
    // point the source at a closed port instead.
    let wl = CATALOGUE_WATCHLIST.replace("{BASE}/shop", "http://127.0.0.1:9/shop");
    env.write(SETTINGS, &wl);
    let out = bin()
        .current_dir(env.dir.path())
        .args(with_flags(&["once", "--no-deliver"]))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let warn = err
        .lines()
        .find(|l| l.contains("WARN") && l.contains("Check failed"))
        .unwrap_or_else(|| panic!("no WARN line in:\n{err}"));
    assert!(
        warn.contains("entity=acme") && warn.contains("source=shop"),
        "{warn}"
    );
    assert!(!err.contains('\u{1b}'), "ANSI escape on a pipe:\n{err:?}");
    assert!(!text(&out.stdout).contains('\u{1b}'));
}

#[test]
fn read_commands_work_while_a_watchlist_is_broken() {
    let dir = demo_state();
    let d = dir.path();
    // Another watchlist with an error: the demo's entity is fine.
    std::fs::write(
        d.join("watchlists/zz-typo.toml"),
        "[watchlist]\nname = \"typo\"\nschedul = \"0 * * * *\"\n",
    )
    .unwrap();
    let out = run(d, &with_flags(&["check"]));
    assert_eq!(out.status.code(), Some(3));
    for (args, expect) in [
        (with_flags(&["findings"]), "profile_mismatch"),
        (with_flags(&["history", "atlas-metaux"]), "snapshot"),
        (
            with_flags(&["diff", "atlas-metaux/catalogue"]),
            "item added",
        ),
        (
            with_flags(&["explain", "atlas-metaux"]),
            "rules (on the latest",
        ),
        (with_flags(&["outbox"]), "outbox"),
    ] {
        let out = run(d, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(text(&out.stdout).contains(expect), "{args:?}");
        assert!(
            err.starts_with("warning: ") && err.contains("zz-typo.toml"),
            "{args:?}: {err}"
        );
    }
    // The demo's own watchlist broken: explain needs it, the others
    // read the store.
    let demo = d.join("watchlists/demo.toml");
    let good = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(&demo, format!("{good}\n[oops]\n")).unwrap();
    let out = run(d, &with_flags(&["findings", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).lines().count() >= 1);
    let out = run(d, &with_flags(&["history", "atlas-metaux", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().count() >= 2,
        "{}",
        text(&out.stdout)
    );
    let out = run(d, &with_flags(&["explain", "atlas-metaux"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no entity \"atlas-metaux\""));
    // Broken settings still stop them (exit 3, every error listed).
    std::fs::write(d.join("pivotwatch.toml"), "[http]\ntimeout = \"soon\"\n").unwrap();
    let out = run(d, &with_flags(&["findings"]));
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn scraped_text_is_escaped_on_the_terminal_and_exact_in_json() {
    let rt = rt();
    let env = rt.block_on(Env::new());
    let hostile = "Instruments \u{202E}gpj.exe\u{1b}[31m";
    let page = |rows: &[(&str, &str, &str, &str)]| Page::html(catalogue_page(rows, "a", None));
    env.site
        .set("/shop", page(&[("Scrap", "-", "SCRAP-1", "1")]));
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    assert!(run(env.dir.path(), &with_flags(&["once"])).status.success());
    env.site.set(
        "/shop",
        page(&[
            ("Scrap", "-", "SCRAP-1", "1"),
            ("DSP", &format!("Texas {hostile}"), "TMS320F28335PGFA", "2"),
        ]),
    );
    let out = run(env.dir.path(), &with_flags(&["once"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        with_flags(&["findings"]),
        with_flags(&["diff", "acme/shop"]),
        with_flags(&["explain", "acme"]),
    ] {
        let out = run(env.dir.path(), &args);
        let s = text(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(
            s.contains("Instruments <U+202E>gpj.exe<U+001B>[31m"),
            "{args:?}: {s}"
        );
        assert!(!s.contains('\u{202E}') && !s.contains('\u{1b}'), "{args:?}");
    }
    let out = run(
        env.dir.path(),
        &with_flags(&["diff", "acme/shop", "--json"]),
    );
    let s = text(&out.stdout);
    let exact = s
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .any(|v| v["new"]["manufacturer"].as_str() == Some(&format!("Texas {hostile}")));
    assert!(exact, "JSON keeps the text exact: {s}");
}

#[test]
fn check_refuses_private_ip_literal_urls_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchlists")).unwrap();
    let wl = r#"[[entity]]
id = "meta"
name = "Metadata"
[[entity.source]]
id = "page"
url = "http://169.254.169.254/latest/meta-data/"
fields = { title = "title" }
"#;
    std::fs::write(dir.path().join("watchlists/w.toml"), wl).unwrap();
    let out = run(dir.path(), &["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("watchlists/w.toml:6:7: ")
            && l.contains("169.254.169.254")
            && l.contains("allow_private_addresses")),
        "{err}"
    );
    // Allowed for the whole installation.
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        "[http]\nallow_private_addresses = true\n",
    )
    .unwrap();
    let out = run(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn check_names_the_known_rules_for_a_subscriber_typo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchlists")).unwrap();
    std::fs::write(
        dir.path().join("watchlists/w.toml"),
        "[[entity]]\nid = \"a\"\nname = \"A\"\ntags = [\"scrap\"]\n[[entity.source]]\nid = \"p\"\nurl = \"https://x.example/\"\nfields = { t = \"title\" }\n",
    )
    .unwrap();
    let settings = "[[subscriber]]\nname = \"desk\"\nto = [\"d@example.org\"]\nrules = [\"profile_missmatch\"]\nwatchlists = [\"v\"]\ntags = [\"scarp\"]\n";
    std::fs::write(dir.path().join("pivotwatch.toml"), settings).unwrap();
    let out = run(dir.path(), &["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("pivotwatch.toml:4:10: ")
            && l.contains("unknown rule \"profile_missmatch\"")
            && l.contains("\"profile_mismatch\"")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("pivotwatch.toml:5:15: ")
            && l.contains("no watchlist is named \"v\"; the watchlists are \"w\"")),
        "{err}"
    );
    // A tag nobody uses is a warning: fix the rest and check passes.
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        settings
            .replace("profile_missmatch", "profile_mismatch")
            .replace("[\"v\"]", "[\"w\"]"),
    )
    .unwrap();
    let out = run(dir.path(), &["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("pivotwatch.toml:6:9: warning: ") && l.contains("\"scarp\"")),
        "{err}"
    );
}

#[test]
fn an_error_prints_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("file"), "not a folder").unwrap();
    let out = run(d, &["demo", "--dir", "file/sub"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    std::fs::create_dir(d.join("watchlists")).unwrap();
    let out = run(d, &["--state-dir", "file/state", "findings"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

const ROBOTS_WATCHLIST: &str = include_str!("../fixtures/robots.toml");

#[test]
fn once_and_probe_honour_robots_txt_unless_told_not_to() {
    let rt = rt();
    let env = rt.block_on(Env::new());
    env.site.set(
        "/robots.txt",
        Page::html("User-agent: *\nDisallow: /private/\n"),
    );
    env.site
        .set("/private/page", Page::html("<html><h1>Secret</h1></html>"));
    env.write(SETTINGS, ROBOTS_WATCHLIST);
    let out = run(
        env.dir.path(),
        &with_flags(&["once", "--json", "--no-deliver"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["status"], "blocked", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("robots.txt disallows")
    );
    let requests = env.site.requests();
    // The bypass for one's own sites fetches it.
    let out = run(
        env.dir.path(),
        &with_flags(&["once", "--json", "--no-deliver", "--no-politeness"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["status"], "new", "{v}");
    assert_eq!(
        env.site.requests(),
        requests + 1,
        "robots.txt was not asked"
    );
    // probe too.
    let url = env.site.url("/private/page");
    let out = run(
        env.dir.path(),
        &[
            "probe",
            &url,
            "--allow-private-addresses",
            "--field",
            "t=h1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("robots.txt disallows /private/page"));
    let out = run(
        env.dir.path(),
        &[
            "probe",
            &url,
            "--allow-private-addresses",
            "--field",
            "t=h1",
            "--no-politeness",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("field t: Secret"));
}

#[test]
fn once_spaces_requests_to_one_host_and_ends_with_a_summary() {
    let rt = rt();
    let env = rt.block_on(Env::new());
    let mut wl = String::new();
    for i in 0..3 {
        env.site
            .set(&format!("/p{i}"), Page::html(format!("<h1>page {i}</h1>")));
        wl.push_str(&format!(
            "[[entity]]\nid = \"e{i}\"\nname = \"E{i}\"\n[[entity.source]]\nid = \"p\"\nurl = \"{{BASE}}/p{i}\"\nfields = {{ t = \"h1\" }}\n"
        ));
    }
    env.write(
        &SETTINGS.replace("[http]", "[http]\nper_host_interval = \"1500ms\""),
        &wl,
    );
    let started = Instant::now();
    let out = run(env.dir.path(), &with_flags(&["once", "--no-deliver"]));
    let elapsed = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Three requests 1.5 s apart (robots.txt, a 404 here, counts as one
    // more on the same host): at least 3 s, whatever the machine.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(
        err.trim_end(),
        "once: checked 3, changed 0, new 3, failed 0, blocked 0, findings 0; \
         deliveries: not attempted (--no-deliver)",
        "{err}"
    );
    // No progress line when stderr is not a terminal.
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
}
