//! Evidence out of the store (#15): the fetch metadata kept with each
//! body, `pivotwatch evidence`, the exports, retention, backup and restore,
//! against a real loopback site checked through several changes.

use sha2::Digest;

use crate::support::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::app::demo::Page;
use pivotwatch::record::CheckStatus;
use pivotwatch::store::Store;

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
    checked_through_changes_with(env, SETTINGS).await
}

/// [`checked_through_changes`] with these settings.
pub async fn checked_through_changes_with(env: &Env, settings: &str) -> Vec<Vec<u8>> {
    env.write(settings, CATALOGUE_WATCHLIST);
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

const REGISTRY_PAGE: &str = "<html><body><h1 class=\"name\">Acme Recycling SARL</h1>\
    <table><tr><td class=\"status\">Active</td><td class=\"inc\">12/05/2009</td></tr></table>\
    <p class=\"address\">12 Rue du Port, Tanger</p>\
    <ul><li class=\"officer\">Karim Bennani</li><li class=\"officer\">Sara  Alaoui</li>\
    <li class=\"psc\">Bennani Holding Ltd</li></ul></body></html>";

/// The evidence watchlist: the shop through three versions (as
/// [`checked_through_changes`]) and the registry record once.
async fn registry_and_shop(env: &Env) -> Vec<Vec<u8>> {
    env.write(SETTINGS, include_str!("../fixtures/evidence.toml"));
    env.site.set("/reg", page(REGISTRY_PAGE));
    let mut served = vec![];
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
        for x in &r {
            assert!(x.error.is_none(), "{x:?}");
        }
        served.push(body.into_bytes());
    }
    // Opened and closed, so that sled has let go of it for the binary.
    drop(env.store());
    served
}

#[tokio::test]
async fn export_warc_has_one_response_per_stored_body_with_correct_digests() {
    let env = Env::new().await;
    let served = registry_and_shop(&env).await;
    let (shop, reg, fid) = {
        let store = env.store();
        let f = store.findings().expect("findings");
        assert_eq!(f.len(), 1);
        (
            store.history("acme/shop").expect("h"),
            store.history("acme/reg").expect("h"),
            f[0].id,
        )
    };
    let out = env.dir.path().join("store.warc.gz");
    run(
        &env,
        &["export", "warc", "--out", &out.display().to_string()],
    );
    let raw = std::fs::read(&out).expect("warc file");

    // One gzip member per record, each a whole WARC/1.1 record.
    let mut members = 0;
    let mut rest = &raw[..];
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut text).expect("member");
        assert!(text.starts_with(b"WARC/1.1\r\n"), "member {members}");
        assert!(text.ends_with(b"\r\n\r\n"), "member {members}");
        rest = d.into_inner();
        members += 1;
    }

    let b32 = |b: &[u8]| {
        format!(
            "sha256:{}",
            data_encoding::BASE32.encode(&sha2::Sha256::digest(b))
        )
    };
    let reader = warc::WarcReader::from_path_gzip(&out).expect("reader");
    let mut kinds = Vec::new();
    let mut responses = std::collections::BTreeMap::new();
    let mut metadata = Vec::new();
    for rec in reader.iter_records() {
        let rec = rec.expect("record parses");
        assert_eq!(rec.warc_version(), "1.1");
        let h = |name: &str| {
            rec.header(warc::WarcHeader::from(name))
                .map(|v| v.into_owned())
        };
        kinds.push(rec.warc_type().to_string());
        let block = rec.body().to_vec();
        assert_eq!(h("warc-block-digest"), Some(b32(&block)), "block digest");
        match rec.warc_type() {
            warc::RecordType::Response => {
                let (head, payload) = block
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|i| (&block[..i], &block[i + 4..]))
                    .expect("HTTP block");
                let head = String::from_utf8_lossy(head).into_owned();
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                assert!(
                    head.contains(&format!("content-length: {}", payload.len())),
                    "{head}"
                );
                assert_eq!(
                    rec.header(warc::WarcHeader::PayloadDigest)
                        .map(|v| v.into_owned()),
                    Some(b32(payload))
                );
                assert_eq!(
                    rec.header(warc::WarcHeader::IPAddress).as_deref(),
                    Some("127.0.0.1")
                );
                let snap: u64 = h("warc-pivotwatch-snapshot")
                    .expect("snapshot")
                    .parse()
                    .expect("id");
                let uri = rec
                    .header(warc::WarcHeader::TargetURI)
                    .expect("uri")
                    .into_owned();
                responses.insert(snap, (uri, payload.to_vec(), rec.warc_id().to_string()));
            }
            warc::RecordType::Metadata => metadata.push((
                rec.header(warc::WarcHeader::RefersTo)
                    .map(|v| v.into_owned()),
                serde_json::from_slice::<serde_json::Value>(&block).expect("metadata JSON"),
            )),
            _ => {}
        }
    }
    assert_eq!(kinds.len(), members, "{kinds:?}");
    assert_eq!(kinds[0], "warcinfo");
    assert_eq!(kinds.iter().filter(|k| *k == "warcinfo").count(), 1);
    // Every stored body, once, with its bytes and URL.
    assert_eq!(responses.len(), shop.len() + reg.len(), "{kinds:?}");
    for (id, bytes) in shop.iter().zip(&served) {
        let (uri, payload, _) = &responses[id];
        assert_eq!(uri, &env.site.url("/shop"));
        assert_eq!(payload, bytes);
    }
    let (uri, payload, _) = &responses[&reg[0]];
    assert_eq!(uri, &env.site.url("/reg"));
    assert_eq!(payload, REGISTRY_PAGE.as_bytes());
    // The finding, tied to the response of its snapshot.
    assert_eq!(metadata.len(), 1);
    let (refers, doc) = &metadata[0];
    assert_eq!(doc["finding"]["id"].as_u64(), Some(fid));
    let snap = doc["snapshot"].as_u64().expect("snapshot");
    assert_eq!(refers.as_deref(), Some(responses[&snap].2.as_str()));
    assert_eq!(doc["snapshot_record"].as_str(), refers.as_deref());

    // --source narrows it to that source's bodies.
    let o = run(&env, &["export", "warc", "--source", "acme/reg"]);
    let n = flate2::read::MultiGzDecoder::new(&o.stdout[..]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(n), &mut text).expect("gunzip");
    assert_eq!(text.matches("WARC-Type: response").count(), 1, "{text}");
}

#[tokio::test]
async fn export_csv_has_a_row_per_finding() {
    let env = Env::new().await;
    registry_and_shop(&env).await;
    let o = run(&env, &["export", "csv"]);
    let mut r = csv::Reader::from_reader(&o.stdout[..]);
    let headers = r.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 1);
    let col = |name: &str| {
        let i = headers.iter().position(|h| h == name).expect(name);
        rows[0][i].to_string()
    };
    assert_eq!(col("entity"), "acme");
    assert_eq!(col("entity_name"), "Acme Recycling");
    assert_eq!(col("source"), "shop");
    assert!(
        col("part_numbers").contains("TMS320F28335PGFA"),
        "{:?}",
        rows[0]
    );
    assert!(col("evidence_command").starts_with("pivotwatch evidence finding:"));
    let o = run(&env, &["export", "csv", "--entity", "nobody"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        1,
        "header only"
    );
}

#[tokio::test]
async fn export_ftm_lines_parse_reference_each_other_and_keep_their_ids() {
    let env = Env::new().await;
    registry_and_shop(&env).await;
    let first = run(&env, &["export", "ftm"]).stdout;
    let out = env.dir.path().join("acme.ftm.json");
    run(
        &env,
        &["export", "ftm", "--out", &out.display().to_string()],
    );
    let second = std::fs::read(&out).expect("file");
    let parse = |b: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8(b.to_vec())
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON entity per line"))
            .collect()
    };
    let a = parse(&first);
    let b = parse(&second);
    let ids = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(ids(&a), ids(&b), "ids are stable across exports");
    let by_id: std::collections::BTreeMap<String, &serde_json::Value> = a
        .iter()
        .map(|e| (e["id"].as_str().expect("id").to_string(), e))
        .collect();
    assert_eq!(by_id.len(), a.len(), "each id once");
    let schema_of = |id: &str| {
        by_id
            .get(id)
            .map(|e| e["schema"].as_str().unwrap_or_default().to_string())
    };
    let props = |e: &serde_json::Value, p: &str| -> Vec<String> {
        e["properties"][p]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|s| s.as_str().expect("string value").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let of = |schema: &str| {
        a.iter()
            .filter(|e| e["schema"] == schema)
            .collect::<Vec<_>>()
    };
    // Every property value is a list of strings, and every reference resolves.
    for e in &a {
        for (p, vs) in e["properties"].as_object().expect("properties") {
            assert!(
                vs.as_array()
                    .is_some_and(|v| v.iter().all(|x| x.is_string())),
                "{p} of {e}"
            );
        }
    }
    let company = of("Company");
    assert_eq!(company.len(), 1, "{a:?}");
    let c = company[0];
    let cid = c["id"].as_str().expect("id");
    assert_eq!(props(c, "name"), ["Acme Recycling"]);
    assert_eq!(props(c, "jurisdiction"), ["ma"]);
    assert_eq!(props(c, "leiCode"), ["529900T8BM49AURSDO55"]);
    assert_eq!(props(c, "registrationNumber"), ["Tanger 84213"]);
    assert_eq!(props(c, "incorporationDate"), ["2009-05-12"]);
    assert_eq!(props(c, "status"), ["Active"]);
    assert!(props(c, "sourceUrl").contains(&env.site.url("/reg")));
    for aid in props(c, "addressEntity") {
        assert_eq!(schema_of(&aid).as_deref(), Some("Address"));
    }
    assert_eq!(of("Address").len(), 1);
    let directorships = of("Directorship");
    assert_eq!(directorships.len(), 2);
    let mut officers = vec![];
    for d in directorships {
        assert_eq!(props(d, "organization"), [cid]);
        let pid = &props(d, "director")[0];
        assert_eq!(schema_of(pid).as_deref(), Some("Person"));
        officers.extend(props(by_id[pid.as_str()], "name"));
        assert_eq!(props(d, "sourceUrl"), [env.site.url("/reg")]);
    }
    officers.sort();
    assert_eq!(officers, ["Karim Bennani", "Sara Alaoui"]);
    let ownerships = of("Ownership");
    assert_eq!(ownerships.len(), 1);
    assert_eq!(props(ownerships[0], "asset"), [cid]);
    let owner = &props(ownerships[0], "owner")[0];
    assert_eq!(schema_of(owner).as_deref(), Some("LegalEntity"));
    let notes = of("Note");
    assert_eq!(notes.len(), 1);
    assert_eq!(props(notes[0], "entity"), [cid]);
    assert_eq!(props(notes[0], "sourceUrl"), [env.site.url("/shop")]);
    assert!(!props(notes[0], "name").is_empty());
}

#[tokio::test]
async fn gc_drops_old_snapshots_but_never_one_behind_a_finding_and_reclaims_their_bodies() {
    let env = Env::new().await;
    let served = checked_through_changes(&env).await;
    // Two more versions (prices only: no new finding).
    for (n, price) in ["7200", "7300"].iter().enumerate() {
        let mut rows = SCRAP.to_vec();
        rows[0].3 = price;
        rows.push(("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"));
        env.site.set(
            "/shop",
            page(&catalogue_page(&rows, &format!("1{n}:30"), None)),
        );
        let r = env.once().await;
        assert_eq!(r[0].status, CheckStatus::Changed, "{:?}", r[0]);
    }
    let (snaps, fid, hashes) = {
        let store = env.store();
        let snaps = store.history("acme/shop").expect("history");
        let f = store
            .finding(store.findings().expect("f")[0].id)
            .expect("f")
            .expect("f");
        let hashes: Vec<String> = snaps
            .iter()
            .map(|id| store.snapshot(*id).expect("r").expect("s").body_hash)
            .collect();
        assert_eq!(snaps.len(), 5);
        assert_eq!(f.evidence.snapshot, Some(snaps[2]));
        assert_eq!(f.evidence.previous_snapshot, Some(snaps[1]));
        (snaps, f.id, hashes)
    };
    // Keep the two newest: the first goes, the finding's two stay.
    env.write(
        &SETTINGS.replace("path = \"state\"", "path = \"state\"\nkeep_snapshots = 2"),
        CATALOGUE_WATCHLIST,
    );
    let o = run(&env, &["gc"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("Removed 1 snapshot(s) and 1 body(ies)"),
        "{text}"
    );
    assert!(text.contains("kept 2 snapshot(s)"), "{text}");
    {
        let store = env.store();
        assert_eq!(store.history("acme/shop").expect("h"), snaps[1..].to_vec());
        assert!(store.snapshot(snaps[0]).expect("r").is_none());
        assert!(
            store.blob(&hashes[0]).expect("r").is_none(),
            "the body went with it"
        );
        for h in &hashes[1..] {
            assert!(store.blob(h).expect("r").is_some());
        }
    }
    // The finding's evidence still leaves the store whole.
    let dir = env.dir.path().join("after-gc");
    run(
        &env,
        &[
            "evidence",
            &format!("finding:{fid}"),
            "--out",
            &dir.display().to_string(),
        ],
    );
    assert_eq!(
        std::fs::read(dir.join("before/body.html")).expect("before"),
        served[1]
    );
    assert_eq!(
        std::fs::read(dir.join("after/body.html")).expect("after"),
        served[2]
    );
    // A second pass finds nothing more to do.
    let o = run(&env, &["gc"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Removed 0 snapshot(s) and 0 body(ies)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

fn smtp_settings(port: u16) -> String {
    format!(
        "{SETTINGS}\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout = \"2s\"\n"
    )
}

/// The tree lines of `backup` / `restore` output (name, entries, digest).
fn tree_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect()
}

// Multi-threaded: the site and the SMTP server must answer while the
// test waits for a pivotwatch process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_the_daemon_runs_restores_the_same_trees_and_the_queued_alert_goes_out_once() {
    use crate::support::process::{BIN, Daemon, WAIT};
    let env = Env::new().await;
    // SMTP where nothing listens: the finding's alert stays queued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let served = checked_through_changes_with(&env, &smtp_settings(dead_port)).await;
    let (fid, installation, last) = {
        let store = env.store();
        let last = *store.history("acme/shop").expect("h").last().expect("one");
        let pending = store.pending_deliveries().expect("outbox");
        assert_eq!(pending.len(), 1, "{pending:?}");
        (
            pending[0].finding,
            store.installation_id().to_string(),
            last,
        )
    };

    // The daemon holds the store; the backup goes through it.
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(env.dir.path()).arg("run");
    let mut daemon = Daemon::spawn(cmd, env.dir.path().join("daemon.log"), &[]);
    let sock = env.dir.path().join("state/control.sock");
    let t = std::time::Instant::now();
    while !sock.exists() {
        assert!(daemon.running(), "daemon exited:\n{}", daemon.log());
        assert!(t.elapsed() < WAIT, "daemon not ready:\n{}", daemon.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Evidence and exports are answered by the daemon too; raw bytes need --out.
    run(
        &env,
        &[
            "evidence",
            &format!("snapshot:{last}"),
            "--out",
            "last.html",
        ],
    );
    assert_eq!(
        std::fs::read(env.dir.path().join("last.html")).expect("written by the daemon"),
        served[2]
    );
    let raw = crate::support::process::pivotwatch(
        env.dir.path(),
        &["evidence", &format!("snapshot:{last}")],
    );
    assert_eq!(raw.status.code(), Some(2));
    assert!(
        crate::support::process::stderr(&raw).contains("give --out FILE"),
        "{}",
        crate::support::process::stderr(&raw)
    );
    let csv_out = run(&env, &["export", "csv"]);
    assert_eq!(String::from_utf8_lossy(&csv_out.stdout).lines().count(), 2);
    let backup = run(&env, &["backup", "store.backup"]);
    let backed = tree_lines(&backup.stdout);
    assert!(
        String::from_utf8_lossy(&backup.stdout)
            .starts_with(&format!("Backed up store {installation}")),
        "{}",
        String::from_utf8_lossy(&backup.stdout)
    );
    assert!(
        backed.iter().any(|l| l.starts_with("outbox ")),
        "{backed:?}"
    );
    assert!(
        daemon.log().contains("Control request."),
        "{}",
        daemon.log()
    );
    assert!(daemon.stop().await.success(), "{}", daemon.log());

    // Restored elsewhere, with a working SMTP server.
    let smtp = crate::support::smtp::SmtpServer::start().await;
    let other = env.dir.path().join("restored");
    std::fs::create_dir_all(other.join("watchlists")).expect("mkdir");
    std::fs::write(
        other.join("pivotwatch.toml"),
        smtp_settings(smtp.addr.port()),
    )
    .expect("settings");
    std::fs::copy(
        env.dir.path().join("watchlists/test.toml"),
        other.join("watchlists/test.toml"),
    )
    .expect("watchlist");
    let file = env.dir.path().join("store.backup").display().to_string();
    let o = crate::support::process::pivotwatch(&other, &["restore", &file]);
    assert!(
        o.status.success(),
        "{}",
        crate::support::process::stderr(&o)
    );
    assert_eq!(
        tree_lines(&o.stdout),
        backed,
        "restored trees = backed-up trees"
    );
    // Restoring over it is refused.
    let again = crate::support::process::pivotwatch(&other, &["restore", &file]);
    assert!(!again.status.success());
    assert!(
        crate::support::process::stderr(&again)
            .contains("restore only into a new or empty state folder"),
        "{}",
        crate::support::process::stderr(&again)
    );
    {
        // The evidence trees are those of the original (the daemon wrote
        // only its own state after the backup).
        let a = env.store().tree_digests().expect("digests");
        let b = Store::open_waiting(&other.join("state"), std::time::Duration::from_secs(5))
            .expect("the restored store opens, marker checked")
            .tree_digests()
            .expect("digests");
        for tree in [
            "snapshots",
            "source_snapshots",
            "blobs",
            "findings",
            "finding_keys",
            "sent",
        ] {
            let pick =
                |v: &[pivotwatch::store::TreeDigest]| v.iter().find(|t| t.tree == tree).cloned();
            assert_eq!(pick(&a), pick(&b), "{tree}");
            assert!(pick(&b).is_some(), "{tree}");
        }
    }
    // The queued alert goes out from the restored store, once.
    let o = crate::support::process::pivotwatch(&other, &["outbox", "retry", "--all"]);
    assert!(
        o.status.success(),
        "{}",
        crate::support::process::stderr(&o)
    );
    let o = crate::support::process::pivotwatch(&other, &["once", "--json"]);
    assert!(
        o.status.success(),
        "{}{}",
        crate::support::process::stdout(&o),
        crate::support::process::stderr(&o)
    );

    let o = crate::support::process::pivotwatch(&other, &["outbox", "retry", "--all"]);
    assert!(
        o.status.success(),
        "{}",
        crate::support::process::stderr(&o)
    );
    let mails = smtp.take();
    assert_eq!(
        mails.len(),
        1,
        "exactly one mail: {:?}",
        mails.iter().map(|m| m.rcpt.clone()).collect::<Vec<_>>()
    );
    let raw = &mails[0].data;
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("mime");
    let mid = msg.message_id().expect("Message-ID").to_string();
    assert!(mid.contains(&installation), "{mid}");
    let text = msg.body_text(0).expect("text");
    assert!(
        text.contains(&format!("pivotwatch evidence finding:{fid}")),
        "{text}"
    );
    let store =
        Store::open_waiting(&other.join("state"), std::time::Duration::from_secs(5)).expect("open");
    assert!(store.pending_deliveries().expect("outbox").is_empty());
}

#[test]
fn retention_settings_read_with_overrides_and_bad_values_name_their_place() {
    use pivotwatch::config::{Config, LoadOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pivotwatch.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).expect("write");
        Config::load_settings(&LoadOptions {
            config: Some(path.clone()),
            watchlists: None,
            state_dir: None,
            check_address: Some(pivotwatch::alert::check_address),
        })
    };
    let s = load(
        "[store]\nkeep_snapshots = 20\nkeep_for = \"90d\"\ngc_interval = \"1h\"\n\
         [store.source.\"acme/shop\"]\nkeep_snapshots = 3\n[store.source.bravo]\nkeep_for = \"7d\"\n",
    )
    .expect("valid");
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(s.gc_interval, std::time::Duration::from_secs(3600));
    let shop = s.retention.of("acme/shop");
    assert_eq!(
        (shop.keep_snapshots, shop.keep_for),
        (Some(3), Some(90 * day))
    );
    let b = s.retention.of("bravo/registry");
    assert_eq!((b.keep_snapshots, b.keep_for), (Some(20), Some(7 * day)));
    let other = s.retention.of("acme/registry");
    assert_eq!(
        (other.keep_snapshots, other.keep_for),
        (Some(20), Some(90 * day))
    );
    // Nothing set: nothing is ever dropped.
    assert!(!load("[store]\n").expect("valid").retention.is_limited());
    // Bad values: errors at their place.
    let e = load("[store]\nkeep_snapshots = 0\n").expect_err("zero");
    let text = e.to_string();
    assert!(text.contains("pivotwatch.toml:2:"), "{text}");
    assert!(text.contains("at least 1"), "{text}");
    let e = load("[store.source.x]\nkeep_for = \"soon\"\n").expect_err("duration");
    assert!(e.to_string().contains("pivotwatch.toml:2:"), "{e}");
    let e = load("[store.source.x]\nkeep = 3\n").expect_err("unknown key");
    assert!(e.to_string().contains("keep"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_applies_the_retention_every_gc_interval() {
    use crate::support::process::{BIN, Daemon, WAIT};
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let mut rows = SCRAP.to_vec();
    for price in ["7000", "7100", "7200"] {
        rows[0].3 = price;
        env.site
            .set("/shop", page(&catalogue_page(&rows, price, None)));
        env.once().await;
    }
    let newest = {
        let store = env.store();
        let h = store.history("acme/shop").expect("h");
        assert_eq!(h.len(), 3);
        assert!(store.findings().expect("f").is_empty());
        *h.last().expect("one")
    };
    env.write(
        &SETTINGS.replace(
            "path = \"state\"",
            "path = \"state\"\nkeep_snapshots = 1\ngc_interval = \"1s\"",
        ),
        CATALOGUE_WATCHLIST,
    );
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(env.dir.path()).arg("run");
    let mut daemon = Daemon::spawn(cmd, env.dir.path().join("daemon.log"), &[]);
    let t = std::time::Instant::now();
    while !daemon.log().contains("Retention pass done.") {
        assert!(daemon.running(), "daemon exited:\n{}", daemon.log());
        assert!(t.elapsed() < WAIT, "no retention pass:\n{}", daemon.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        daemon.log().contains("snapshots_removed=2"),
        "{}",
        daemon.log()
    );
    assert!(daemon.stop().await.success(), "{}", daemon.log());
    assert_eq!(env.store().history("acme/shop").expect("h"), vec![newest]);
}
