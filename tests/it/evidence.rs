//! Evidence out of the store (#15): the fetch metadata kept with each
//! body, `pivotwatch evidence`, the exports, retention, backup and restore,
//! against a real loopback site checked through several changes.

use sha2::Digest;

use crate::support::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::app::demo::Page;
use pivotwatch::record::CheckStatus;

const SCRAP: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("Steel scrap E3", "", "FE-E3", "240"),
];

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn page(body: &str) -> Page {
    let mut p = Page::html(body);
    p.headers.push(("server".into(), "loopback-site/1".into()));
    p.headers.push((
        "etag".into(),
        format!("\"{}\"", &sha256(body.as_bytes())[..8]),
    ));
    p
}

/// The site checked through three versions of its catalogue; the third
/// lists a TI DSP (a pivot finding). Returns each version's bytes as served.
pub async fn checked_through_changes(env: &Env) -> Vec<Vec<u8>> {
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let mut served = Vec::new();
    let mut rows = SCRAP.to_vec();
    for (n, stamp) in ["09:00", "10:00", "11:00"].iter().enumerate() {
        if n == 1 {
            rows[0].3 = "7100";
        }
        if n == 2 {
            rows.push(("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"));
        }
        let body = catalogue_page(&rows, stamp, None);
        env.site.set("/shop", page(&body));
        let r = env.once().await;
        assert!(
            matches!(r[0].status, CheckStatus::New | CheckStatus::Changed),
            "{:?}",
            r[0]
        );
        served.push(body.into_bytes());
    }
    served
}

#[tokio::test]
async fn each_snapshot_keeps_how_its_body_was_fetched() {
    let env = Env::new().await;
    let served = checked_through_changes(&env).await;
    let store = env.store();
    let ids = store.history("acme/shop").expect("history");
    assert_eq!(ids.len(), 3);
    for (id, bytes) in ids.iter().zip(&served) {
        let snap = store.snapshot(*id).expect("read").expect("snapshot");
        let meta = snap.fetch.expect("fetch metadata on a new snapshot");
        assert_eq!(meta.body_sha256, sha256(bytes));
        assert_eq!(meta.responses.len(), 1);
        let r = &meta.responses[0];
        assert_eq!(r.requested_url, env.site.url("/shop"));
        assert_eq!(r.final_url, env.site.url("/shop"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            r.headers.get("server").map(String::as_str),
            Some("loopback-site/1")
        );
        assert!(r.headers.contains_key("date"), "{:?}", r.headers);
        assert!(r.headers.contains_key("etag"), "{:?}", r.headers);
        assert_eq!(r.remote_ip().as_deref(), Some("127.0.0.1"));
        assert!(r.started_at <= r.finished_at);
        assert_eq!((r.body_offset, r.body_len), (0, bytes.len() as u64));
        assert_eq!(
            store.blob(&snap.body_hash).expect("blob").as_deref(),
            Some(&bytes[..])
        );
    }
}
