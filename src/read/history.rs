//! `history ENTITY[/SOURCE]`: the snapshots recorded per source.

use std::io::Write;

use super::{ReadError, split_target};
use crate::config::Config;
use crate::store::Store;
use crate::text::for_display;

pub(crate) fn history(
    config: &Config,
    store: &Store,
    target: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    let (entity, source) = split_target(target);
    // (source id, URL) of each source: from the watchlist, or, when the
    // entity is not there (its watchlist has errors, or it was removed),
    // from what the store recorded.
    let sources: Vec<(String, Option<String>)> = match config.entity(entity) {
        Some(ent) => ent
            .sources
            .iter()
            .map(|s| (s.id.clone(), Some(s.url.to_string())))
            .collect(),
        None => {
            let prefix = format!("{entity}/");
            let v: Vec<(String, Option<String>)> = store
                .source_states()?
                .into_iter()
                .filter_map(|(k, _)| k.strip_prefix(&prefix).map(|s| (s.to_string(), None)))
                .collect();
            if v.is_empty() {
                return Err(ReadError::Usage(format!(
                    "no entity {entity:?} in the watchlists"
                )));
            }
            v
        }
    };
    for (sid, url) in &sources {
        if source.is_some_and(|x| x != sid) {
            continue;
        }
        let key = format!("{entity}/{sid}");
        let state = store.source_state(&key)?;
        if !json {
            let url = url.as_deref().unwrap_or("(not in the watchlists)");
            writeln!(out, "{key}  {}", for_display(url))?;
            if let Some(st) = &state {
                writeln!(
                    out,
                    "  last check {} ({}){}",
                    st.last_check.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    st.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    st.last_error
                        .as_ref()
                        .map(|e| format!(": {}", for_display(e)))
                        .unwrap_or_default()
                )?;
            }
        }
        for id in store.history(&key)? {
            let Some(snap) = store.snapshot(id)? else {
                continue;
            };
            if json {
                let v = serde_json::json!({
                    "entity": entity, "source": sid, "snapshot": snap.id,
                    "fetched_at": snap.fetched_at, "http_status": snap.http_status,
                    "body_hash": snap.body_hash, "fields": snap.record.fields.len(),
                    "items": snap.record.items.len(), "url": snap.url,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "  snapshot {:>6}  {}  {} fields, {} items  body {}",
                    snap.id,
                    snap.fetched_at.to_rfc3339(),
                    snap.record.fields.len(),
                    snap.record.items.len(),
                    &snap.body_hash[..12.min(snap.body_hash.len())]
                )?;
            }
        }
    }
    Ok(0)
}
