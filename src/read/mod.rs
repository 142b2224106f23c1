//! The read side: `history`, `diff`, `findings`, `explain` and `outbox`,
//! with their text and JSON output, and the commands that take evidence
//! out of the store (`evidence`, `export`: `crate::export`; `backup`) or
//! apply its retention (`gc`), over an open store and a loaded
//! configuration, writing to any [`Write`]. The command line (`app`) calls
//! [`run`] when it can open the store; the daemon's control socket
//! (`daemon::control`) calls it with its own store and running
//! configuration, so both print the same bytes and exit codes.
//!
//! Adding a read command: a [`ReadCommand`] variant and its file here, and
//! its clap definition in `cli` (`Command::into_read`).
//!
//! **Architecture Invariant:** imports nothing of `app`, `cli` or
//! `daemon`; reads the store (only `outbox retry` writes: it requeues and
//! sends; and `gc`, which removes what the retention drops).

mod diff;
mod evidence;
mod explain;
mod findings;
mod history;
mod outbox;

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::{Store, StoreError};

pub use explain::explain;
pub use findings::print_finding;
pub(crate) use outbox::alert_usage;
pub use outbox::print_delivery;

/// Exit code: a source failed (`once`), or a command failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: wrong usage or a missing thing named on the command line.
pub const EXIT_USAGE: u8 = 2;

/// A read command, as the command line gave it; also the command of a
/// control-socket request (`daemon::control::Request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadCommand {
    /// `history TARGET [--json]`.
    History {
        /// ENTITY or ENTITY/SOURCE.
        target: String,
        /// JSON output.
        json: bool,
    },
    /// `diff TARGET [--from] [--to] [--json]`.
    Diff {
        /// ENTITY/SOURCE.
        target: String,
        /// `--from`.
        from: Option<String>,
        /// `--to`.
        to: Option<String>,
        /// JSON output.
        json: bool,
    },
    /// `findings [--since] [--entity] [--json]`.
    Findings {
        /// `--since`.
        since: Option<String>,
        /// `--entity`.
        entity: Option<String>,
        /// JSON output.
        json: bool,
    },
    /// `explain ENTITY [--json]`.
    Explain {
        /// Entity id.
        entity: String,
        /// JSON output.
        json: bool,
    },
    /// `outbox [list [--json]]`.
    OutboxList {
        /// JSON output.
        json: bool,
    },
    /// `outbox retry ID | --all`.
    OutboxRetry {
        /// Delivery id; `None` = all.
        id: Option<u64>,
    },
    /// `evidence snapshot:ID|finding:ID [--out FILE|DIR|FILE.zip]`.
    Evidence {
        /// `snapshot:ID` or `finding:ID`.
        target: String,
        /// `--out`, absolute (the daemon writes it when it holds the store).
        out: Option<std::path::PathBuf>,
    },
    /// `gc`: apply `[store]` retention, collect unreferenced bodies.
    Gc,
    /// `backup FILE`: a consistent copy of the store.
    Backup {
        /// The backup file, absolute.
        file: std::path::PathBuf,
    },
    /// `export FORMAT [--entity] [--source] [--since] [--out FILE]`.
    Export {
        /// warc, ftm or csv.
        format: crate::export::Format,
        /// `--entity`.
        entity: Option<String>,
        /// `--source`.
        source: Option<String>,
        /// `--since`.
        since: Option<String>,
        /// `--out`, absolute.
        out: Option<std::path::PathBuf>,
    },
}

impl ReadCommand {
    /// Whether the command writes raw bytes to standard output, which the
    /// control socket's text answer cannot carry.
    pub fn writes_raw_stdout(&self) -> bool {
        matches!(
            self,
            ReadCommand::Evidence { out: None, .. }
                | ReadCommand::Export {
                    format: crate::export::Format::Warc,
                    out: None,
                    ..
                }
        )
    }
}

/// Errors a read command may end with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Alert delivery failed as a whole (`outbox retry`).
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
    /// Wrong usage, or a thing named on the command line that is not there.
    #[error("{0}")]
    Usage(String),
    /// Writing output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `evidence` or `export` failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

impl ReadError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReadError::Usage(_) => EXIT_USAGE,
            ReadError::Export(e) if e.is_usage() => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }

    /// Whether this is a write to a closed pipe, anywhere in the chain.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            // Transparent: the chain starts below the io error itself.
            ReadError::Io(io) => crate::text::is_broken_pipe(io),
            _ => crate::text::is_broken_pipe(self),
        }
    }
}

/// Runs a read command against an open store; the command line and the
/// daemon's control socket both call this.
pub async fn run(
    config: Arc<Config>,
    store: Store,
    cmd: ReadCommand,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    match cmd {
        ReadCommand::History { target, json } => {
            history::history(&config, &store, &target, json, out)
        }
        ReadCommand::Diff {
            target,
            from,
            to,
            json,
        } => diff::diff(&store, &target, from.as_deref(), to.as_deref(), json, out),
        ReadCommand::Findings {
            since,
            entity,
            json,
        } => findings::findings(&store, since.as_deref(), entity.as_deref(), json, out),
        ReadCommand::Explain { entity, json } => explain(&config, &store, &entity, json, out),
        ReadCommand::OutboxList { json } => outbox::list(&config, &store, json, out),
        ReadCommand::OutboxRetry { id } => outbox::retry(&config, &store, id, out).await,
        ReadCommand::Evidence { target, out: path } => {
            evidence::evidence(&config, &store, &target, path.as_deref(), out)
        }
        ReadCommand::Backup { file } => {
            let r = crate::store::run_blocking(&store, move |s| s.backup(&file)).await?;
            print_backup(&r, "Backed up", out)?;
            Ok(0)
        }
        ReadCommand::Gc => {
            let policy = config.settings.retention.clone();
            let r = crate::store::run_blocking(&store, move |s| s.gc(&policy, chrono::Utc::now()))
                .await?;
            writeln!(
                out,
                "Removed {} snapshot(s) and {} body(ies), {} stored; kept {} snapshot(s) beyond the retention because findings name them.",
                r.snapshots_removed,
                r.blobs_removed,
                bytesize::ByteSize(r.bytes_removed),
                r.kept_for_findings
            )?;
            Ok(0)
        }
        ReadCommand::Export {
            format,
            entity,
            source,
            since,
            out: path,
        } => {
            let filter = crate::export::Filter {
                entity,
                source,
                since: since.as_deref().map(findings::parse_since).transpose()?,
            };
            crate::export::export(&config, &store, format, &filter, path.as_deref(), out)?;
            Ok(0)
        }
    }
}

/// What `backup` and `restore` print: the store, then each tree's entry
/// count and BLAKE3 digest (equal lines mean equal content).
pub fn print_backup(
    r: &crate::store::BackupReport,
    verb: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let entries: u64 = r.trees.iter().map(|t| t.entries).sum();
    writeln!(
        out,
        "{verb} store {} (schema version {}, made {}): {} trees, {entries} entries, {}.",
        r.header.installation_id,
        r.header.schema_version,
        r.header.created_at.to_rfc3339(),
        r.trees.len(),
        bytesize::ByteSize(r.bytes)
    )?;
    let rows = r
        .trees
        .iter()
        .map(|t| {
            vec![
                format!("  {}", t.tree),
                t.entries.to_string(),
                t.blake3.clone(),
            ]
        })
        .collect();
    for line in table_lines(rows) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(crate) fn split_target(t: &str) -> (&str, Option<&str>) {
    match t.split_once('/') {
        Some((e, s)) => (e, Some(s)),
        None => (t, None),
    }
}

/// A plain terminal table: no borders, two spaces between columns, each
/// column as wide as its widest cell (in terminal columns, so accents and
/// wide characters align), never wrapped; one line per row, in order,
/// without trailing spaces.
pub(crate) fn table_lines(rows: Vec<Vec<String>>) -> Vec<String> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    table.add_rows(rows);
    for i in 0..n {
        if let Some(c) = table.column_mut(i) {
            c.set_padding((0, if i + 1 == n { 0 } else { 2 }));
        }
    }
    table.lines().map(|l| l.trim_end().to_string()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["a".to_string(), "Métaux".to_string(), "x".to_string()],
            vec![
                "Memory IC (DRAM/SRAM/Flash/EEPROM)".to_string(),
                "-".to_string(),
                "y".to_string(),
            ],
            vec![String::new(), String::new(), "z".to_string()],
        ];
        let lines = super::table_lines(rows);
        assert_eq!(
            lines,
            [
                "a                                   Métaux  x",
                "Memory IC (DRAM/SRAM/Flash/EEPROM)  -       y",
                "                                            z",
            ]
        );
    }
}
