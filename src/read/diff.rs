//! `diff ENTITY/SOURCE [--from REF] [--to REF]`: what changed between two
//! snapshots.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::{ReadError, split_target};
use crate::record::{Record, Snapshot};
use crate::store::Store;
use crate::text::for_display;

fn resolve_ref(store: &Store, key: &str, ids: &[u64], r: &str) -> Result<Snapshot, ReadError> {
    if let Ok(id) = r.parse::<u64>() {
        if !ids.contains(&id) {
            return Err(ReadError::Usage(format!(
                "snapshot {id} is not in the history of {key}"
            )));
        }
        return store
            .snapshot(id)?
            .ok_or_else(|| ReadError::Usage(format!("snapshot {id} not found")));
    }
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(r)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ReadError::Usage(format!(
                "REF {r:?} is neither a snapshot id nor an RFC 3339 time ({e})"
            ))
        })?;
    let mut best = None;
    for id in ids {
        if let Some(s) = store.snapshot(*id)?
            && s.fetched_at <= t
        {
            best = Some(s);
        }
    }
    best.ok_or_else(|| ReadError::Usage(format!("{key} has no snapshot at or before {r}")))
}

pub(crate) fn diff(
    store: &Store,
    target: &str,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    let (entity, Some(source)) = split_target(target) else {
        return Err(ReadError::Usage("diff needs ENTITY/SOURCE".into()));
    };
    let key = format!("{entity}/{source}");
    let ids = store.history(&key)?;
    if ids.is_empty() {
        return Err(ReadError::Usage(format!(
            "{key} has no snapshots yet; run `pivotwatch once --source {key}`"
        )));
    }
    let to_snap = match to {
        Some(r) => resolve_ref(store, &key, &ids, r)?,
        None => store
            .snapshot(ids[ids.len() - 1])?
            .ok_or_else(|| ReadError::Usage("latest snapshot missing".into()))?,
    };
    let from_snap = match from {
        Some(r) => Some(resolve_ref(store, &key, &ids, r)?),
        None => {
            let pos = ids.iter().position(|i| *i == to_snap.id).unwrap_or(0);
            match pos.checked_sub(1) {
                Some(p) => store.snapshot(ids[p])?,
                None => None,
            }
        }
    };
    let empty = Record::default();
    let changes = crate::diff::diff(
        from_snap.as_ref().map(|s| &s.record).unwrap_or(&empty),
        &to_snap.record,
    );
    if json {
        for c in &changes {
            writeln!(out, "{}", serde_json::to_string(c).unwrap_or_default())?;
        }
    } else {
        writeln!(
            out,
            "{key}: snapshot {} → {} ({} change{})",
            from_snap
                .as_ref()
                .map(|s| s.id.to_string())
                .unwrap_or_else(|| "(none)".into()),
            to_snap.id,
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        )?;
        for c in &changes {
            writeln!(out, "  {}", for_display(&c.describe()))?;
        }
    }
    Ok(0)
}
