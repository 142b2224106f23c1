//! `export warc`: WARC/1.1 (ISO 28500:2017), one gzip member per record
//! (as web archives store them, so a reader can seek to any record).
//!
//! Records: one `warcinfo`; for each stored body, one `response` per HTTP
//! response behind it (a paginated source's pages each get their own,
//! cut from the stored body at the offsets its fetch metadata keeps),
//! with `WARC-Target-URI` (the URL that answered), `WARC-Date` (when the
//! request was sent), `WARC-IP-Address` and `WARC-Payload-Digest` /
//! `WARC-Block-Digest` (`sha256:` + base32); a snapshot from before
//! fetch metadata was kept becomes one `resource` record (no headers
//! were kept to rebuild a response from); one `metadata` record per
//! finding (`application/json`: the finding, the snapshots it compares),
//! `WARC-Refers-To` its snapshot's first record.
//!
//! Bodies are stored decoded, so the HTTP header block written says what
//! the payload is: `Content-Length` is the payload's, and a
//! `Content-Encoding` the server sent is kept as
//! `X-Archive-Orig-Content-Encoding` (replay tools must not decode it
//! again). Record ids are derived from the installation id and the
//! snapshot or finding id: two exports name the same record alike.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{ExportError, Filter, body};
use crate::record::{Finding, ResponseMeta, Snapshot};
use crate::store::Store;

/// Headers of one record, in the order written.
type Headers = Vec<(&'static str, String)>;

pub(super) fn export(store: &Store, filter: &Filter, w: &mut dyn Write) -> Result<(), ExportError> {
    let inst = store.installation_id();
    let info_id = record_id(inst, "warcinfo", 0, 0);
    let fields = format!(
        "software: pivotwatch/{}\r\nformat: WARC File Format 1.1\r\n\
         conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n\
         isPartOf: pivotwatch installation {inst}\r\n\
         description: pages fetched by pivotwatch, as stored; metadata records tie findings to them\r\n",
        env!("CARGO_PKG_VERSION"),
    );
    write_record(
        w,
        vec![
            ("WARC-Type", "warcinfo".into()),
            ("WARC-Record-ID", info_id.clone()),
            ("WARC-Date", date(Utc::now())),
            ("WARC-Block-Digest", digest(fields.as_bytes())),
            ("Content-Type", "application/warc-fields".into()),
        ],
        fields.as_bytes(),
    )?;
    // The first record of each snapshot, for the findings' metadata.
    let mut first_record: BTreeMap<u64, String> = BTreeMap::new();
    for (_, id) in store.all_history()? {
        let Some(snap) = store.snapshot(id)? else {
            continue;
        };
        if !filter.covers_snapshot(&snap) {
            continue;
        }
        let stored = body(store, &snap)?;
        let rid = write_snapshot(w, store, inst, &info_id, &snap, &stored)?;
        first_record.insert(snap.id, rid);
    }
    for f in store.findings()? {
        if !filter.covers_finding(&f) {
            continue;
        }
        write_finding(w, inst, &info_id, &f, &first_record)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes a snapshot's records; returns the id of the first.
fn write_snapshot(
    w: &mut dyn Write,
    store: &Store,
    inst: &str,
    info_id: &str,
    snap: &Snapshot,
    stored: &[u8],
) -> Result<String, ExportError> {
    let responses = snap.fetch.as_ref().map(|m| &m.responses[..]).unwrap_or(&[]);
    let mut first = None;
    for (n, r) in responses.iter().enumerate() {
        // A whole-site page's body is its own blob.
        let own;
        let payload = match &r.body_blob {
            Some(h) => {
                own = store.blob(h)?.ok_or_else(|| ExportError::MissingBody {
                    snapshot: snap.id,
                    hash: h.clone(),
                })?;
                &own[..]
            }
            None => page_of(stored, r),
        };
        let rid = record_id(inst, "snapshot", snap.id, n as u64);
        let block = http_block(r, payload);
        let mut h: Headers = vec![
            ("WARC-Type", "response".into()),
            ("WARC-Record-ID", rid.clone()),
            ("WARC-Date", date(r.started_at)),
            ("WARC-Target-URI", r.final_url.clone()),
        ];
        if let Some(ip) = r.remote_ip() {
            h.push(("WARC-IP-Address", ip));
        }
        h.push(("WARC-Warcinfo-ID", info_id.to_string()));
        h.push(("WARC-Payload-Digest", digest(payload)));
        h.push(("WARC-Block-Digest", digest(&block)));
        h.push(("Content-Type", "application/http;msgtype=response".into()));
        h.push(("WARC-Pivotwatch-Snapshot", snap.id.to_string()));
        h.push(("WARC-Pivotwatch-Source", snap.source.clone()));
        if r.requested_url != r.final_url {
            h.push(("WARC-Pivotwatch-Requested-URI", r.requested_url.clone()));
        }
        write_record(w, h, &block)?;
        first.get_or_insert(rid);
    }
    if let Some(rid) = first {
        return Ok(rid);
    }
    // A snapshot of an older store: the body, without the response.
    let rid = record_id(inst, "snapshot", snap.id, 0);
    write_record(
        w,
        vec![
            ("WARC-Type", "resource".into()),
            ("WARC-Record-ID", rid.clone()),
            ("WARC-Date", date(snap.fetched_at)),
            ("WARC-Target-URI", snap.url.clone()),
            ("WARC-Warcinfo-ID", info_id.to_string()),
            ("WARC-Payload-Digest", digest(stored)),
            ("WARC-Block-Digest", digest(stored)),
            ("Content-Type", "application/octet-stream".into()),
            ("WARC-Pivotwatch-Snapshot", snap.id.to_string()),
            ("WARC-Pivotwatch-Source", snap.source.clone()),
        ],
        stored,
    )?;
    Ok(rid)
}

fn write_finding(
    w: &mut dyn Write,
    inst: &str,
    info_id: &str,
    f: &Finding,
    first_record: &BTreeMap<u64, String>,
) -> Result<(), ExportError> {
    let rec = |id: Option<u64>| id.and_then(|i| first_record.get(&i).cloned());
    let doc = serde_json::json!({
        "finding": f,
        "snapshot": f.evidence.snapshot,
        "snapshot_record": rec(f.evidence.snapshot),
        "previous_snapshot": f.evidence.previous_snapshot,
        "previous_snapshot_record": rec(f.evidence.previous_snapshot),
    });
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let mut h: Headers = vec![
        ("WARC-Type", "metadata".into()),
        ("WARC-Record-ID", record_id(inst, "finding", f.id, 0)),
        ("WARC-Date", date(f.created_at)),
        ("WARC-Target-URI", f.evidence.url.clone()),
    ];
    if let Some(r) = rec(f.evidence.snapshot) {
        h.push(("WARC-Refers-To", r));
    }
    h.push(("WARC-Warcinfo-ID", info_id.to_string()));
    h.push(("WARC-Block-Digest", digest(&bytes)));
    h.push(("Content-Type", "application/json".into()));
    h.push(("WARC-Pivotwatch-Finding", f.id.to_string()));
    write_record(w, h, &bytes)
}

/// The bytes of one response inside a stored body (the whole body when
/// the offsets do not fit it).
fn page_of<'a>(stored: &'a [u8], r: &ResponseMeta) -> &'a [u8] {
    let start = usize::try_from(r.body_offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(r.body_len).unwrap_or(usize::MAX));
    stored.get(start..end).unwrap_or(stored)
}

/// The HTTP response message: status line, the kept headers, the payload.
fn http_block(r: &ResponseMeta, payload: &[u8]) -> Vec<u8> {
    let reason = reqwest::StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut b = format!("HTTP/1.1 {} {reason}\r\n", r.status).into_bytes();
    for (name, value) in &r.headers {
        // One line per header: a value cannot break the block.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        let name = match name.as_str() {
            "content-length" => continue,
            "content-encoding" => "x-archive-orig-content-encoding",
            n => n,
        };
        b.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    b.extend_from_slice(format!("content-length: {}\r\n\r\n", payload.len()).as_bytes());
    b.extend_from_slice(payload);
    b
}

/// One record as its own gzip member.
fn write_record(w: &mut dyn Write, headers: Headers, block: &[u8]) -> Result<(), ExportError> {
    let mut head = String::from("WARC/1.1\r\n");
    for (k, v) in headers {
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", block.len()));
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(head.as_bytes())?;
    gz.write_all(block)?;
    gz.write_all(b"\r\n\r\n")?;
    gz.finish()?;
    Ok(())
}

/// `sha256:` + RFC 4648 base32, the form WARC tools write and check.
pub(crate) fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        data_encoding::BASE32.encode(&sha2::Sha256::digest(bytes))
    )
}

/// A WARC date: UTC, microseconds (WARC 1.1 allows sub-second precision).
fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `<urn:uuid:…>` derived from the installation and what the record holds:
/// the same record gets the same id in every export of one store.
fn record_id(inst: &str, kind: &str, id: u64, n: u64) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{inst}/{kind}/{id}/{n}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    // RFC 9562 version 8 (custom), variant 10.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_uuids_stable_per_store_and_distinct() {
        let a = record_id("i1", "snapshot", 3, 0);
        assert_eq!(a, record_id("i1", "snapshot", 3, 0));
        assert_ne!(a, record_id("i2", "snapshot", 3, 0));
        assert_ne!(a, record_id("i1", "snapshot", 3, 1));
        assert_ne!(a, record_id("i1", "finding", 3, 0));
        let u = a.trim_start_matches("<urn:uuid:").trim_end_matches('>');
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
    }

    #[test]
    fn digests_are_sha256_in_base32() {
        // SHA-256("abc") = ba7816bf…; its base32 form.
        assert_eq!(
            digest(b"abc"),
            "sha256:XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ===="
        );
    }
}
