//! How records are laid out in sled: JSON values (snapshots zstd-compressed),
//! big-endian ids in keys, the schema version, and the generic "get then
//! decode" and "iterate then decode" every tree family uses.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::error::Fault;

/// The layout version of the store this pivotwatch writes, kept in the
/// `meta` tree under [`SCHEMA_KEY`]: written when a store is created,
/// checked at every open. A store of a newer version is refused (its
/// records may not mean what this version reads into them); one without
/// the key (made before it existed) is version 1. An older store is
/// migrated at open, then gets the key:
/// - 1 → 2: item keys of stored snapshots computed again (one part-number
///   normalisation, look-alike letters read as Latin).
/// - 2 → 3: nothing rewritten. Findings written from then on are
///   zstd-compressed, as snapshots are, and are read in either form; the
///   version keeps a pivotwatch that reads findings only as plain JSON
///   from opening the store.
pub const SCHEMA_VERSION: u64 = 3;

/// The `meta` key holding the schema version (u64, big-endian).
pub(super) const SCHEMA_KEY: &[u8] = b"schema_version";

pub(super) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain data structs to JSON cannot fail (no maps with
    // non-string keys, no custom serialisers that error).
    serde_json::to_vec(v).unwrap_or_default()
}

pub(super) fn dec<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Undecodable {
        key: String::from_utf8_lossy(key).into_owned(),
        source: e,
    })
}

/// The four bytes every zstd frame starts with. A stored JSON value starts
/// with `{`, so the two encodings cannot be confused.
pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Snapshots are stored as zstd-compressed JSON (a 120-item catalogue:
/// ~20 KB of JSON, ~3 KB compressed); records of older stores, plain JSON,
/// still read.
pub(super) fn enc_compressed<T: Serialize>(v: &T) -> Vec<u8> {
    let json = enc(v);
    compress(&json).unwrap_or(json)
}

/// zstd level 1 with the size known up front, on this thread's own
/// compression context: `zstd::bulk::compress` makes (and zeroes) a new
/// context per call, which was a third of the compression's cost on a
/// first pass (BENCHMARKS.md, issue 16).
pub(super) fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static CONTEXT: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        let z = match &mut *c {
            Some(z) => z,
            None => c.insert(zstd::bulk::Compressor::new(1)?),
        };
        z.compress(bytes)
    })
}

/// Decompresses one stored value (a single zstd frame that records its
/// size, as [`compress`] writes) on this thread's own context, into a
/// buffer of exactly that size. `zstd::decode_all` makes a new streaming
/// context and its buffers per call; reading the 13 078 findings of a
/// 100k-source store spent ~8 % in it (BENCHMARKS.md, issue 16). A value
/// that does not record its size, claims more than 64 MiB, or does not
/// decode to what it claims goes through `decode_all`, which gives the
/// error for a damaged (e.g. cut short) one.
pub(super) fn decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    const MAX_EXACT: u64 = 64 << 20;
    thread_local! {
        static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }
    if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(bytes)
        && n <= MAX_EXACT
    {
        let exact = CONTEXT.with(|c| {
            let mut c = c.borrow_mut();
            let z = match &mut *c {
                Some(z) => z,
                None => c.insert(zstd::bulk::Decompressor::new()?),
            };
            z.decompress(bytes, n as usize)
        });
        if let Ok(v) = exact
            && v.len() as u64 == n
        {
            return Ok(v);
        }
    }
    zstd::decode_all(bytes)
}

pub(super) fn dec_compressed<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return dec(key, bytes);
    }
    let json = decompress(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: format!("compressed record does not decompress: {e}"),
    })?;
    dec(key, &json)
}

/// A value decoder: [`dec`] or [`dec_compressed`].
pub(super) type Decode<T> = fn(&[u8], &[u8]) -> Result<T, StoreError>;

/// The value under `key`, decoded.
pub(super) fn get<T>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    decode: Decode<T>,
) -> Result<Option<T>, Fault> {
    let key = key.as_ref();
    match tree.get(key)? {
        Some(v) => Ok(Some(decode(key, &v)?)),
        None => Ok(None),
    }
}

/// Every value of a tree, in key order, decoded.
pub(super) fn values<T>(tree: &sled::Tree, decode: Decode<T>) -> Result<Vec<T>, Fault> {
    decoded(tree.iter(), decode).collect()
}

/// The values of `entries` (a tree's iterator, either way round), each
/// decoded as it is read.
pub(super) fn decoded<T>(
    entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    decode: Decode<T>,
) -> impl Iterator<Item = Result<T, Fault>> {
    entries.map(move |kv| {
        let (k, v) = kv?;
        Ok(decode(&k, &v)?)
    })
}

/// Every entry of a tree keyed by text (`entity/source`, ...), in key
/// order, decoded.
pub(super) fn entries<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<(String, T)>, Fault> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        out.push((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?));
    }
    Ok(out)
}

pub(super) fn source_prefix(source: &str) -> Vec<u8> {
    let mut k = source.as_bytes().to_vec();
    k.push(0);
    k
}

pub(super) fn history_key(source: &str, id: u64) -> Vec<u8> {
    let mut k = source_prefix(source);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn id_from(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(bytes.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompress_reads_sized_frames_streamed_frames_and_refuses_damaged_ones() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("item {} ", i % 977).into_bytes())
            .collect();
        // What `compress` writes: one frame that records its size.
        let sized = compress(&text).expect("compress");
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&sized).expect("header"),
            Some(text.len() as u64)
        );
        assert_eq!(decompress(&sized).expect("sized"), text);
        // Older blobs: a streamed frame without its size, and two frames.
        let streamed = {
            let mut e = zstd::stream::Encoder::new(Vec::new(), 3).expect("encoder");
            std::io::Write::write_all(&mut e, &text).expect("write");
            e.finish().expect("finish")
        };
        assert_eq!(decompress(&streamed).expect("streamed"), text);
        let mut two = compress(&text[..1000]).expect("a");
        two.extend(compress(&text[1000..]).expect("b"));
        assert_eq!(decompress(&two).expect("two frames"), text);
        // A frame cut short is an error, not a shorter value. (A frame
        // without a checksum whose middle was overwritten may decode to
        // other bytes of the same size; on disk, sled's CRC of each log
        // message is what catches that, not this function.)
        assert!(decompress(&sized[..sized.len() / 2]).is_err());
        assert!(decompress(&sized[..sized.len() - 1]).is_err());
    }
}
