//! A store written by an older pivotwatch, opened by this one: the schema
//! migration at open keys stored items the way extraction keys them today,
//! so the first check after the upgrade finds nothing that did not happen.

use crate::support::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::app::demo::Page;
use pivotwatch::record::CheckStatus;
use pivotwatch::store::{Commit, NewSnapshot, SCHEMA_VERSION};

/// A marking with Cyrillic look-alike letters, as GUR records carry it.
const CYRILLIC: &str = "МАХ1660ЕЕЕ";
/// The key pivotwatch 1 stored for it (Cyrillic kept, upper case).
const OLD_KEY: &str = "МАХ1660ЕЕЕ";
/// The key it has now (look-alikes read as Latin).
const NEW_KEY: &str = "MAX1660EEE";

#[tokio::test]
async fn a_store_with_old_item_keys_is_migrated_and_the_next_check_finds_nothing() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let rows = [
        ("Copper scrap, 1 t", "", "CU-1", "7000"),
        ("Regulator", "Maxim", CYRILLIC, "12"),
    ];
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "09:00", None)));
    assert_eq!(env.once().await[0].status, CheckStatus::New);

    // Make the store what the older pivotwatch left: the latest snapshot
    // keyed the old way, and schema version 1 in `meta`.
    let store = env.store();
    let mut snap = store
        .latest_snapshot("acme/shop")
        .expect("read")
        .expect("snapshot");
    let mut item = snap.record.items.remove(NEW_KEY).expect("new key stored");
    item.key = OLD_KEY.to_string();
    snap.record.items.insert(OLD_KEY.to_string(), item);
    let state = store
        .source_state("acme/shop")
        .expect("read")
        .expect("state");
    store
        .commit(Commit {
            source: "acme/shop".into(),
            state,
            snapshot: Some(NewSnapshot {
                snapshot: snap,
                body: b"the older pivotwatch's fetch".to_vec(),
            }),
            findings: Vec::new(),
            deliveries: Vec::new(),
        })
        .expect("commit");
    store.flush().expect("flush");
    drop(store);
    let db = env.dir.path().join("state/db");
    set_schema_version(&db, 1);

    // The new binary's first check of the same page: no change, no finding.
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{:?}", r[0].changes);
    assert!(r[0].changes.is_empty(), "{:?}", r[0].changes);
    assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);

    let store = env.store();
    let history = store.history("acme/shop").expect("history");
    assert_eq!(history.len(), 2, "an unchanged check stores no snapshot");
    for id in history {
        let snap = store.snapshot(id).expect("read").expect("snapshot");
        let keys: Vec<&str> = snap.record.items.keys().map(String::as_str).collect();
        assert!(keys.contains(&NEW_KEY), "{keys:?}");
        assert!(!keys.contains(&OLD_KEY), "{keys:?}");
    }
    drop(store);
    assert_eq!(schema_version(&db), SCHEMA_VERSION);
}

/// Writes `meta/schema_version` with sled itself, as an older pivotwatch
/// left it.
fn set_schema_version(db: &std::path::Path, v: u64) {
    let db = open(db);
    db.open_tree("meta")
        .expect("meta")
        .insert("schema_version", &v.to_be_bytes())
        .expect("write");
    db.flush().expect("flush");
}

fn schema_version(db: &std::path::Path) -> u64 {
    let db = open(db);
    let v = db
        .open_tree("meta")
        .expect("meta")
        .get("schema_version")
        .expect("read")
        .expect("a schema version");
    u64::from_be_bytes(v.as_ref().try_into().expect("8 bytes"))
}

/// Opens the database, waiting for the store closed a moment ago to let go.
fn open(db: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(db) {
            Ok(d) => return d,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("sled open: {e}"),
        }
    }
}
