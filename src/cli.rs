//! The command line (DESIGN §10). `main.rs` parses it and calls
//! [`crate::app::run`]; the names here are an interface outside scripts
//! rely on.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::read::ReadCommand;

/// pivotwatch: watch company registries and supplier catalogues for
/// sanctions-evasion pivots.
#[derive(Debug, Parser)]
#[command(name = "pivotwatch", version, about, long_about = None)]
pub struct Cli {
    /// Settings file (default: ./pivotwatch.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of watchlist files (default: ./watchlists).
    #[arg(long, global = true, value_name = "DIR")]
    pub watchlists: Option<PathBuf>,
    /// State folder: sled database, evidence, spool (default: ./.pivotwatch).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Built-in scenario on 127.0.0.1: a scrap-metal firm pivots to Western chips; offline, in seconds.
    Demo {
        /// Where to keep the demo's state and alert emails (default: a new temporary folder).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Instead of running the scenario, serve its site until Ctrl-C and leave a
        /// configuration in DIR for `pivotwatch run` (the catalogue changes after 90 s).
        #[arg(long)]
        serve: bool,
    },
    /// Validate settings and all watchlists; every error as path:line:col; exit 3 on error.
    Check,
    /// Check sources now (all by default), store, detect, deliver; exit 1 if any source failed.
    Once {
        /// Only this source (repeatable).
        #[arg(long = "source", value_name = "ENTITY/SOURCE")]
        sources: Vec<String>,
        /// Queue alerts but do not deliver them.
        #[arg(long)]
        no_deliver: bool,
        /// One JSON object per source checked.
        #[arg(long)]
        json: bool,
        /// Ignore robots.txt and the per-host limits ([http] per_host_concurrency,
        /// per_host_interval, [hosts.*], Crawl-delay, Retry-After pauses): only for
        /// sites you run or may crawl without limits.
        #[arg(long)]
        no_politeness: bool,
    },
    /// The daemon: checks every source on its schedule, delivers alerts, serves the
    /// status endpoint; SIGHUP reloads, SIGTERM stops.
    Run {
        /// Check every source right after start instead of waiting for its schedule.
        #[arg(long)]
        check_now: bool,
    },
    /// The read commands (history, diff, findings, explain, outbox).
    #[command(flatten)]
    Read(ReadArgs),
    /// Restore a backup (`pivotwatch backup`) into a new or empty state folder; every
    /// tree is verified against the backup.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Send a test mail to a subscriber now (outside the outbox) and print the server's reply.
    SendTestEmail {
        /// Subscriber name from pivotwatch.toml (`default` when none is configured).
        subscriber: String,
    },
    /// Try an extractor on a live URL and print what it yields.
    Probe {
        /// The page to fetch.
        url: String,
        /// A field: NAME=SELECTOR (repeatable; SELECTOR may end in @attr, e.g. a.site@href).
        #[arg(long = "field", value_name = "NAME=SELECTOR")]
        fields: Vec<String>,
        /// Row selector for catalogue items.
        #[arg(long, value_name = "SELECTOR")]
        rows: Option<String>,
        /// A column relative to each row: NAME=SELECTOR (name, manufacturer, part_number, price, link, or any extra name).
        #[arg(long = "col", value_name = "NAME=SELECTOR", requires = "rows")]
        cols: Vec<String>,
        /// Parse the body as JSON; fields and columns are JSON pointers.
        #[arg(long)]
        json_format: bool,
        /// Allow loopback and private addresses (your own network, tests).
        #[arg(long)]
        allow_private_addresses: bool,
        /// Do not ask the site's robots.txt first (only for sites you run or may crawl).
        #[arg(long)]
        no_politeness: bool,
        /// Print the record as one JSON object.
        #[arg(long)]
        json: bool,
        /// A built-in registry adapter (companies-house, gleif, opencorporates):
        /// URL is then the company number, the LEI, or JURISDICTION/NUMBER.
        #[arg(long, value_name = "ADAPTER", conflicts_with_all = ["fields", "rows", "json_format"])]
        adapter: Option<String>,
        /// Walk the whole site from URL (no selectors): its pages and the
        /// mentions on them, with their context.
        #[arg(long, conflicts_with_all = ["fields", "rows", "json_format"])]
        site: bool,
    },
    /// Watchlist entities from a spreadsheet (CSV: name, country, company number,
    /// LEI, website, tags …): registry adapter sources per row, ids derived.
    Import {
        /// The CSV file (comma, semicolon or tab; UTF-8 with or without BOM, or Windows-1252).
        file: PathBuf,
        /// Print the TOML instead of writing it.
        #[arg(long)]
        dry_run: bool,
        /// Watchlist file to write or extend (default: WATCHLISTS/<file name>.toml).
        #[arg(long, value_name = "FILE")]
        into: Option<PathBuf>,
    },
}

/// The read commands: run by [`crate::read::run`] on the store, or by the
/// daemon through its control socket while it holds the store. A new read
/// command is a variant here, its arm in [`ReadArgs::into_command`], and
/// its [`ReadCommand`] in `read`.
#[derive(Debug, Subcommand)]
pub enum ReadArgs {
    /// Snapshot history of an entity or one of its sources.
    History {
        /// ENTITY or ENTITY/SOURCE.
        target: String,
        /// One JSON object per snapshot.
        #[arg(long)]
        json: bool,
    },
    /// Changes between two snapshots of a source (default: the last two).
    Diff {
        /// ENTITY/SOURCE.
        target: String,
        /// Snapshot id or RFC 3339 time (the snapshot current at that time).
        #[arg(long, value_name = "REF")]
        from: Option<String>,
        /// Snapshot id or RFC 3339 time.
        #[arg(long, value_name = "REF")]
        to: Option<String>,
        /// One JSON object per change.
        #[arg(long)]
        json: bool,
    },
    /// Stored findings, newest last.
    Findings {
        /// Only since this long ago (e.g. 24h, 7d) or this RFC 3339 time.
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
        /// Only this entity.
        #[arg(long, value_name = "ID")]
        entity: Option<String>,
        /// One JSON object per finding.
        #[arg(long)]
        json: bool,
    },
    /// An entity's profile and, for every rule, whether it fires and why.
    Explain {
        /// Entity id.
        entity: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Pending and dead alert deliveries with their last error; `retry` requeues and sends.
    Outbox {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// A snapshot's body exactly as fetched (snapshot:ID), or a finding's evidence
    /// bundle (finding:ID --out DIR|FILE.zip: finding, alert text, before/after bodies
    /// with their fetch metadata, manifest of SHA-256s).
    Evidence {
        /// snapshot:ID (`history` lists them) or finding:ID (`findings` lists them).
        target: String,
        /// Where to write (a snapshot: FILE, default standard output; a finding: DIR or FILE.zip).
        #[arg(long, value_name = "FILE|DIR")]
        out: Option<PathBuf>,
    },
    /// Write a consistent copy of the store to FILE (also while `run` holds it).
    Backup {
        /// The backup file to write.
        file: PathBuf,
    },
    /// Apply the [store] retention (keep_snapshots, keep_for) now and remove the bodies no
    /// snapshot references; snapshots a finding names are always kept.
    Gc,
    /// Export the store: warc (WARC/1.1, gzip per record), ftm (FollowTheMoney JSON
    /// lines) or csv (findings).
    Export {
        /// warc, ftm or csv.
        #[arg(value_enum)]
        format: ExportFormat,
        /// Only this entity.
        #[arg(long, value_name = "ID")]
        entity: Option<String>,
        /// Only this source (SOURCE or ENTITY/SOURCE).
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// Only snapshots and findings since this long ago (24h, 7d) or this RFC 3339 time.
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
        /// Write to FILE (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `export` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// WARC/1.1, one gzip member per record (FILE.warc.gz).
    Warc,
    /// FollowTheMoney entities as JSON lines.
    Ftm,
    /// Findings as CSV.
    Csv,
}

impl ReadArgs {
    /// The command as `read` (and the control protocol) takes it.
    pub fn into_command(self) -> ReadCommand {
        match self {
            ReadArgs::History { target, json } => ReadCommand::History { target, json },
            ReadArgs::Diff {
                target,
                from,
                to,
                json,
            } => ReadCommand::Diff {
                target,
                from,
                to,
                json,
            },
            ReadArgs::Findings {
                since,
                entity,
                json,
            } => ReadCommand::Findings {
                since,
                entity,
                json,
            },
            ReadArgs::Explain { entity, json } => ReadCommand::Explain { entity, json },
            ReadArgs::Evidence { target, out } => ReadCommand::Evidence {
                target,
                out: out.map(absolute),
            },
            ReadArgs::Gc => ReadCommand::Gc,
            ReadArgs::Backup { file } => ReadCommand::Backup {
                file: absolute(file),
            },
            ReadArgs::Export {
                format,
                entity,
                source,
                since,
                out,
            } => ReadCommand::Export {
                format: match format {
                    ExportFormat::Warc => crate::export::Format::Warc,
                    ExportFormat::Ftm => crate::export::Format::Ftm,
                    ExportFormat::Csv => crate::export::Format::Csv,
                },
                entity,
                source,
                since,
                out: out.map(absolute),
            },
            ReadArgs::Outbox { action } => match action {
                None => ReadCommand::OutboxList { json: false },
                Some(OutboxAction::List { json }) => ReadCommand::OutboxList { json },
                Some(OutboxAction::Retry { id, all }) => ReadCommand::OutboxRetry {
                    id: if all { None } else { id },
                },
            },
        }
    }
}

/// A path made absolute against the current folder (a daemon answering
/// through its control socket writes it from its own folder).
pub fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// `outbox` sub-commands.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Pending and dead deliveries with attempts, next attempt and last error (the default).
    List {
        /// One JSON object per delivery.
        #[arg(long)]
        json: bool,
    },
    /// Requeue a dead or waiting delivery (or every one with --all), then deliver what is due.
    Retry {
        /// Delivery id, as `pivotwatch outbox` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Every dead or waiting delivery.
        #[arg(long)]
        all: bool,
    },
}

/// Whether log lines may carry ANSI colours: only to a terminal, and not
/// when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>). Pipes and files never get escape sequences.
pub fn colours_wanted(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some(OsStr::new(""))));
        assert!(!colours_wanted(true, Some(OsStr::new("1"))));
        assert!(!colours_wanted(false, None));
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
