//! Alert integrity of one check (issue 10): pagination behind a 304, a
//! selector that stops matching, hostile pages. Real loopback sites
//! (`demo::Site`, which answers 304 when `If-None-Match` matches its
//! ETag), real sled files in temp folders, the real binary for signals.

mod common;

use common::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::demo::Page;
use pivotwatch::record::{Change, CheckStatus};
use pivotwatch::store::SourceState;

const PAGE1: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("Steel scrap E3", "", "FE-E3", "240"),
];
const PAGE2: &[(&str, &str, &str, &str)] = &[("Brass scrap", "", "BR-2", "3100")];
const ADDED: (&str, &str, &str, &str) =
    ("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310");

fn added_items(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::ItemAdded { item, .. } => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// Two pages; page 1 links page 2 and never changes.
fn two_pages(env: &Env, page2: &[(&str, &str, &str, &str)]) {
    env.site.set(
        "/shop",
        Page::html(catalogue_page(PAGE1, "09:00", Some("/shop?page=2"))),
    );
    env.site.set(
        "/shop?page=2",
        Page::html(catalogue_page(page2, "09:00", None)),
    );
}

#[tokio::test]
async fn an_item_added_on_page_2_behind_an_unchanged_page_1_is_found() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    two_pages(&env, PAGE2);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    let state = env.store().source_state("acme/shop").unwrap().unwrap();
    assert_eq!(
        state.pages.len(),
        2,
        "both pages keep validators: {state:?}"
    );
    assert!(state.pages.iter().all(|p| p.etag.is_some()));

    // Nothing changed: every page is asked with its own validators (the
    // site answers 304 to each) and the check is unchanged.
    let before = env.site.requests();
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{:?}", r[0].error);
    assert_eq!(env.site.requests() - before, 2, "page 1 and page 2 asked");

    // Page 2 gains an item; page 1 is byte for byte the same (so it
    // answers 304 to its ETag).
    let mut rows = PAGE2.to_vec();
    rows.push(ADDED);
    two_pages(&env, &rows);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
    assert_eq!(added_items(&r[0].changes), vec!["TMS320F28335PGFA"]);
    let snap = env.store().latest_snapshot("acme/shop").unwrap().unwrap();
    assert_eq!(
        snap.record.items.len(),
        4,
        "pages 1 and 2 both in the record"
    );

    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{:?}", r[0].error);
}

#[tokio::test]
async fn a_state_stored_before_page_validators_reads_every_page() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    two_pages(&env, PAGE2);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);

    // The state as an older pivotwatch wrote it: page 1's validators only,
    // no `pages` key at all.
    let store = env.store();
    let mut json = serde_json::to_value(store.source_state("acme/shop").unwrap().unwrap()).unwrap();
    assert!(json.as_object_mut().unwrap().remove("pages").is_some());
    let old: SourceState = serde_json::from_value(json).expect("an old state still reads");
    assert!(old.pages.is_empty() && old.etag.is_some());
    store.put_source_state("acme/shop", &old).unwrap();
    drop(store);

    let mut rows = PAGE2.to_vec();
    rows.push(ADDED);
    two_pages(&env, &rows);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
    assert_eq!(added_items(&r[0].changes), vec!["TMS320F28335PGFA"]);
}

#[tokio::test]
async fn raising_max_pages_reads_the_pages_past_the_old_limit() {
    let env = Env::new().await;
    let one_page = CATALOGUE_WATCHLIST.replace("max_pages = 5", "max_pages = 1");
    env.write(SETTINGS, &one_page);
    two_pages(&env, PAGE2);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    assert_eq!(
        env.store()
            .latest_snapshot("acme/shop")
            .unwrap()
            .unwrap()
            .record
            .items
            .len(),
        2
    );

    // Same pages (page 1 answers 304), but now two pages may be read.
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
    assert_eq!(added_items(&r[0].changes), vec!["BR2"]);
}

const REGISTRY_WATCHLIST: &str = r##"
[watchlist]
name = "test"
maintainers = ["analyst@example.org"]

[[entity]]
id = "acme"
name = "Acme Recycling"
activity = ["NACE:46.77"]

[[entity.source]]
id = "reg"
kind = "registry"
url = "{BASE}/reg"
[entity.source.fields]
name = "h1.name"
status = "td.status"
officers = { selector = "li.officer", all = true }
"##;

fn registry_page(officer_class: &str, officers: &[&str]) -> String {
    let lis: String = officers
        .iter()
        .map(|o| format!("<li class=\"{officer_class}\">{o}</li>"))
        .collect();
    format!(
        "<html><body><h1 class=\"name\">Acme Recycling LLC</h1>\
         <table><tr><td class=\"status\">Active</td></tr></table>\
         <ul class=\"officers\">{lis}</ul></body></html>"
    )
}

#[tokio::test]
async fn a_renamed_class_fails_the_check_and_raises_no_finding() {
    let env = Env::new().await;
    env.write(SETTINGS, REGISTRY_WATCHLIST);
    env.site.set(
        "/reg",
        Page::html(registry_page("officer", &["Ivan Petrov", "Olga Ivanova"])),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    let first = env.store().latest_snapshot("acme/reg").unwrap().unwrap();
    let mails = env.eml_files().len();

    // The site renames the class: `li.officer` matches nothing, while
    // `h1.name` and `td.status` still match.
    env.site.set(
        "/reg",
        Page::html(registry_page("person", &["Ivan Petrov", "Olga Ivanova"])),
    );
    for _ in 0..2 {
        let r = env.once().await;
        assert_eq!(r[0].status, CheckStatus::Failed, "{:?}", r[0]);
        assert_eq!(r[0].finding_count, 0);
        let err = r[0].error.as_deref().unwrap_or_default();
        assert!(
            err.contains("degraded") && err.contains("field `officers` (`li.officer`)"),
            "{err}"
        );
    }
    let store = env.store();
    let latest = store.latest_snapshot("acme/reg").unwrap().unwrap();
    assert_eq!(
        latest.id, first.id,
        "the previous snapshot stays the latest"
    );
    assert_eq!(store.history("acme/reg").unwrap().len(), 1);
    let state = store.source_state("acme/reg").unwrap().unwrap();
    assert_eq!(state.last_status, Some(CheckStatus::Failed));
    assert_eq!(
        state.consecutive_failures, 2,
        "counts toward the health notice"
    );
    assert!(state.last_error.unwrap().contains("degraded"));
    drop(store);
    assert_eq!(
        env.eml_files().len(),
        mails,
        "no mail for a broken selector"
    );

    // The site goes back to the old markup: unchanged, no finding.
    env.site.set(
        "/reg",
        Page::html(registry_page("officer", &["Ivan Petrov", "Olga Ivanova"])),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{:?}", r[0].error);
}

#[tokio::test]
async fn an_officer_really_removed_is_still_a_change_that_alerts() {
    let env = Env::new().await;
    env.write(SETTINGS, REGISTRY_WATCHLIST);
    env.site.set(
        "/reg",
        Page::html(registry_page("officer", &["Ivan Petrov", "Olga Ivanova"])),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    let mails = env.eml_files().len();

    // One officer leaves; the selector still matches the other.
    env.site.set(
        "/reg",
        Page::html(registry_page("officer", &["Ivan Petrov"])),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
    assert!(
        r[0].changes.iter().any(
            |c| matches!(c, Change::ValueRemoved { field, old } if field == "officers" && old == "Olga Ivanova")
        ),
        "{:?}",
        r[0].changes
    );
    assert!(r[0].finding_count > 0, "a real change still alerts");
    assert!(env.eml_files().len() > mails);

    // The last officer's element stays but its text is emptied: the
    // selector still matches, so this is a change too, not a failure.
    env.site
        .set("/reg", Page::html(registry_page("officer", &[""])));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
}

const MAKERS: &[(&str, &str, &str, &str)] = &[
    ("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"),
    ("MCU 32-bit", "STMicroelectronics", "STM32F407VGT6", "12"),
];

#[tokio::test]
async fn an_item_column_that_vanishes_from_every_row_fails_the_check() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    env.site
        .set("/shop", Page::html(catalogue_page(MAKERS, "09:00", None)));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    let first = env.store().latest_snapshot("acme/shop").unwrap().unwrap();
    let mails = env.eml_files().len();

    // The manufacturer cell is renamed in every row: `td.m` matches
    // nothing, names and part numbers still do.
    let renamed = catalogue_page(MAKERS, "09:00", None).replace("class=\"m\"", "class=\"brand\"");
    env.site.set("/shop", Page::html(renamed));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Failed, "{:?}", r[0]);
    assert_eq!(r[0].finding_count, 0);
    let err = r[0].error.as_deref().unwrap_or_default();
    assert!(
        err.contains("degraded") && err.contains("column `manufacturer` (`td.m`)"),
        "{err}"
    );
    let store = env.store();
    assert_eq!(
        store.latest_snapshot("acme/shop").unwrap().unwrap().id,
        first.id
    );
    drop(store);
    assert_eq!(env.eml_files().len(), mails);

    // A maker really dropped from one row (the cell stays, empty) is a
    // change.
    let mut rows = MAKERS.to_vec();
    rows[1].1 = "";
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "09:00", None)));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0].error);
}

#[tokio::test]
async fn a_json_pointer_that_stops_resolving_fails_the_check() {
    let env = Env::new().await;
    env.write(
        SETTINGS,
        r##"
[watchlist]
name = "test"
[[entity]]
id = "acme"
name = "Acme Recycling"
[[entity.source]]
id = "lei"
kind = "registry"
format = "json"
url = "{BASE}/lei"
[entity.source.fields]
name = "/data/name"
officers = { pointer = "/data/officers", all = true }
"##,
    );
    env.site.set(
        "/lei",
        Page::json(r#"{"data":{"name":"Acme","officers":["Ivan Petrov"]}}"#),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    env.site.set(
        "/lei",
        Page::json(r#"{"data":{"name":"Acme","people":["Ivan Petrov"]}}"#),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Failed, "{:?}", r[0]);
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or_default()
            .contains("field `officers` (`/data/officers`)"),
        "{:?}",
        r[0].error
    );
    assert_eq!(env.store().history("acme/lei").unwrap().len(), 1);
}
