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
