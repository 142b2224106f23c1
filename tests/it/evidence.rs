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

/// Snapshot ids of the shop and the id of its one finding, store closed.
fn ids(env: &Env) -> (Vec<u64>, u64) {
    let store = env.store();
    let snaps = store.history("acme/shop").expect("history");
    let findings = store.findings().expect("findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    (snaps, findings[0].id)
}

fn run(env: &Env, args: &[&str]) -> std::process::Output {
    let o = crate::support::process::pivotwatch(env.dir.path(), args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        crate::support::process::stderr(&o)
    );
    o
}

#[tokio::test]
async fn evidence_returns_the_exact_bytes_served() {
    let env = Env::new().await;
    let served = checked_through_changes(&env).await;
    let (snaps, _) = ids(&env);
    for (id, bytes) in snaps.iter().zip(&served) {
        let o = run(&env, &["evidence", &format!("snapshot:{id}")]);
        assert_eq!(&o.stdout, bytes, "snapshot {id} on stdout");
        let file = env.dir.path().join(format!("s{id}.html"));
        let o = run(
            &env,
            &[
                "evidence",
                &format!("snapshot:{id}"),
                "--out",
                &file.display().to_string(),
            ],
        );
        assert!(o.stdout.is_empty());
        assert_eq!(&std::fs::read(&file).expect("file"), bytes);
    }
    let o = crate::support::process::pivotwatch(env.dir.path(), &["evidence", "snapshot:999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        crate::support::process::stderr(&o).contains("no snapshot 999"),
        "{}",
        crate::support::process::stderr(&o)
    );
}

/// Checks a bundle's files (name → bytes) against the manifest and the
/// bodies served.
fn verify_bundle(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    served: &[Vec<u8>],
    fid: u64,
) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest JSON");
    let listed = manifest["files"].as_array().expect("files");
    let mut names: Vec<&str> = listed
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    for f in listed {
        let path = f["path"].as_str().expect("path");
        let bytes = &files[path];
        assert_eq!(f["sha256"].as_str(), Some(sha256(bytes).as_str()), "{path}");
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64), "{path}");
    }
    names.extend(["manifest.json", "SHA256SUMS"]);
    names.sort();
    let mut have: Vec<&str> = files.keys().map(String::as_str).collect();
    have.sort();
    assert_eq!(names, have, "the manifest names every other file");
    let sums = String::from_utf8(files["SHA256SUMS"].clone()).expect("utf8");
    assert_eq!(sums.lines().count(), listed.len());
    assert_eq!(files["before/body.html"], served[1]);
    assert_eq!(files["after/body.html"], served[2]);
    let finding: serde_json::Value =
        serde_json::from_slice(&files["finding.json"]).expect("finding JSON");
    assert_eq!(finding["id"].as_u64(), Some(fid));
    let after: serde_json::Value =
        serde_json::from_slice(&files["after/snapshot.json"]).expect("snapshot JSON");
    assert_eq!(
        after["fetch"]["body_sha256"].as_str(),
        Some(sha256(&served[2]).as_str())
    );
    let alert = String::from_utf8(files["alert.txt"].clone()).expect("utf8");
    assert!(
        alert.contains(&format!("pivotwatch evidence finding:{fid}")),
        "{alert}"
    );
}

#[tokio::test]
async fn a_finding_bundle_holds_both_bodies_and_its_manifest_hashes_verify() {
    let env = Env::new().await;
    let served = checked_through_changes(&env).await;
    let (_, fid) = ids(&env);
    // A folder.
    let dir = env.dir.path().join("bundle");
    let d = dir.display().to_string();
    run(&env, &["evidence", &format!("finding:{fid}"), "--out", &d]);
    let mut files = std::collections::BTreeMap::new();
    for rel in [
        "finding.json",
        "alert.txt",
        "before/body.html",
        "before/snapshot.json",
        "after/body.html",
        "after/snapshot.json",
        "manifest.json",
        "SHA256SUMS",
    ] {
        files.insert(rel.to_string(), std::fs::read(dir.join(rel)).expect(rel));
    }
    assert_eq!(
        walk(&dir).len(),
        files.len(),
        "no file outside the manifest: {:?}",
        walk(&dir)
    );
    verify_bundle(&files, &served, fid);
    // A non-empty folder is refused.
    let o = crate::support::process::pivotwatch(
        env.dir.path(),
        &["evidence", &format!("finding:{fid}"), "--out", &d],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        crate::support::process::stderr(&o)
    );
    // A zip file.
    let zip_path = env.dir.path().join("finding.zip");
    run(
        &env,
        &[
            "evidence",
            &format!("#{fid}"),
            "--out",
            &zip_path.display().to_string(),
        ],
    );
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("zip")).expect("archive");
    let mut zfiles = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).expect("entry");
        let name = f.name().to_string();
        let rel = name
            .strip_prefix(&format!("finding-{fid}/"))
            .unwrap_or_else(|| panic!("{name} outside the bundle's folder"))
            .to_string();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut b).expect("read");
        zfiles.insert(rel, b);
    }
    assert_eq!(zfiles, files, "the zip holds the same files as the folder");
    // The alert mail names the command.
    let eml = env.eml_files();
    assert!(!eml.is_empty());
    let raw = std::fs::read(&eml[eml.len() - 1]).expect("eml");
    let msg = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("mime");
    let text = msg.body_text(0).expect("text part");
    assert!(
        text.contains(&format!("pivotwatch evidence finding:{fid} --out")),
        "{text}"
    );
    let html = msg.body_html(0).expect("html part");
    assert!(
        html.contains(&format!("pivotwatch evidence finding:{fid} --out")),
        "{html}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
