//! The `daemon` tree: `entity/source` → [`DaemonSource`], what
//! `pivotwatch run` keeps across restarts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{dec, enc, entries, get};
use super::error::Fault;
use super::inner::Inner;
use super::{Store, StoreError};

/// What `pivotwatch run` remembers about one source across restarts: when
/// it is next due and which health notice its maintainers got. Plain data;
/// the daemon decides what it means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonSource {
    /// When the source is next due (jitter included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<DateTime<Utc>>,
    /// The schedule `next_due` was computed from (expression and
    /// timezone); when the configuration changes it, the time is computed
    /// again.
    #[serde(default)]
    pub schedule: String,
    /// `next_due` is an early retry after a transient failure (or a
    /// server's `Retry-After`), not a scheduled slot.
    #[serde(default)]
    pub retry: bool,
    /// When the maintainers were told the source is broken; cleared when
    /// they were told it recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_notice: Option<DateTime<Utc>>,
    /// The last notice that could not be sent (it is tried again at the
    /// next check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_error: Option<String>,
}

impl Store {
    /// The daemon's record of a source.
    pub fn daemon_source(&self, source: &str) -> Result<Option<DaemonSource>, StoreError> {
        self.run(|i| i.daemon_source(source))
    }

    /// Every daemon record, by `entity/source`.
    pub fn daemon_sources(&self) -> Result<Vec<(String, DaemonSource)>, StoreError> {
        self.run(|i| i.daemon_sources())
    }

    /// Writes the daemon's record of a source. Not flushed here: the
    /// daemon flushes its schedule in batches and on shutdown; a crash
    /// loses at most sled's flush window, i.e. a source is checked once
    /// more than planned.
    pub fn put_daemon_source(&self, source: &str, d: &DaemonSource) -> Result<(), StoreError> {
        self.run(|i| i.put_daemon_source(source, d))
    }

    /// Forgets the daemon's record of a source (it left the watchlists).
    pub fn remove_daemon_source(&self, source: &str) -> Result<(), StoreError> {
        self.run(|i| i.remove_daemon_source(source))
    }

    /// The last timepoint seen on a streaming API's stream (`run`'s
    /// Companies House streams), to resume from after a restart.
    pub fn stream_timepoint(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.run(|i| i.stream_timepoint(stream))
    }

    /// Records (or, with `None`, forgets) a stream's last timepoint. Not
    /// flushed here: a crash replays at most sled's flush window of events.
    pub fn put_stream_timepoint(&self, stream: &str, tp: Option<u64>) -> Result<(), StoreError> {
        self.run(|i| i.put_stream_timepoint(stream, tp))
    }
}

/// The `meta` key of a stream's timepoint.
fn timepoint_key(stream: &str) -> Vec<u8> {
    format!("stream_timepoint/{stream}").into_bytes()
}

impl Inner {
    /// The daemon's record of a source.
    pub(super) fn daemon_source(&self, source: &str) -> Result<Option<DaemonSource>, Fault> {
        get(&self.daemon, source, dec)
    }

    /// Every daemon record, by `entity/source`.
    pub(super) fn daemon_sources(&self) -> Result<Vec<(String, DaemonSource)>, Fault> {
        entries(&self.daemon)
    }

    /// Writes the daemon's record of a source. Not flushed here: the
    /// daemon flushes its schedule in batches and on shutdown; a crash
    /// loses at most sled's flush window, i.e. a source is checked once
    /// more than planned.
    pub(super) fn put_daemon_source(&self, source: &str, d: &DaemonSource) -> Result<(), Fault> {
        self.daemon.insert(source.as_bytes(), enc(d))?;
        Ok(())
    }

    /// Forgets the daemon's record of a source (it left the watchlists).
    pub(super) fn remove_daemon_source(&self, source: &str) -> Result<(), Fault> {
        self.daemon.remove(source.as_bytes())?;
        Ok(())
    }

    pub(super) fn stream_timepoint(&self, stream: &str) -> Result<Option<u64>, Fault> {
        Ok(self
            .meta
            .get(timepoint_key(stream))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    pub(super) fn put_stream_timepoint(&self, stream: &str, tp: Option<u64>) -> Result<(), Fault> {
        match tp {
            Some(tp) => {
                self.meta
                    .insert(timepoint_key(stream), tp.to_string().into_bytes())?;
            }
            None => {
                self.meta.remove(timepoint_key(stream))?;
            }
        }
        Ok(())
    }
}
