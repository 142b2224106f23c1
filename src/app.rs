//! Command implementations behind the CLI. Each returns the process exit
//! code; output goes to stdout, diagnostics to stderr.

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::check::{CheckReport, Checker};
use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigErrors, LoadOptions};
use crate::daemon::control::ReadCommand;
use crate::extract::{
    self, Column, ExtractSpec, HtmlField, HtmlItems, HtmlSpec, JsonField, JsonItems, JsonSpec,
};
use crate::fetch::{Conditional, FetchOptions, Fetcher};
use crate::record::{CheckStatus, Finding, Record, Snapshot};
use crate::store::{Store, StoreError};
use crate::text::for_display;

/// A line on stderr for the person at the terminal; a closed stderr is
/// not worth a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit code: a source failed (`once`).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: wrong usage or a missing thing named on the command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: invalid configuration (systemd: `RestartPreventExitStatus=3`).
pub const EXIT_CONFIG: u8 = 3;

/// Errors a command may end with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A check could not run.
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
    /// Alert delivery failed as a whole.
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
    /// Fetching failed (probe).
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// Extraction failed (probe).
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    /// Wrong usage.
    #[error("{0}")]
    Usage(String),
    /// The site's robots.txt does not let us fetch the page (probe).
    #[error("{0}")]
    Blocked(String),
    /// Writing output or a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The daemon could not start or run.
    #[error(transparent)]
    Daemon(crate::daemon::DaemonError),
    /// The store is held by `pivotwatch run` and its control socket does
    /// not answer.
    #[error(transparent)]
    Control(#[from] crate::daemon::control::ControlError),
    /// A command run by the daemon (through its control socket) failed.
    #[error("{message}")]
    Remote {
        /// The daemon's error message.
        message: String,
        /// The exit code it chose.
        code: u8,
    },
}

impl From<crate::daemon::DaemonError> for AppError {
    fn from(e: crate::daemon::DaemonError) -> Self {
        match e {
            crate::daemon::DaemonError::Config(c) => AppError::Config(c),
            other => AppError::Daemon(other),
        }
    }
}

impl AppError {
    /// Whether this is a write to a closed pipe (the reader of our output
    /// went away), anywhere in the chain: not an error for a command line
    /// tool, which then stops quietly.
    pub fn is_broken_pipe(&self) -> bool {
        let pipe = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
        if let AppError::Io(io) = self {
            return pipe(io);
        }
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            if e.downcast_ref::<std::io::Error>().is_some_and(pipe) {
                return true;
            }
            cur = e.source();
        }
        false
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => EXIT_CONFIG,
            AppError::Usage(_) => EXIT_USAGE,
            AppError::Remote { code, .. } => *code,
            _ => EXIT_FAILED,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<u8, AppError> {
    let opts = LoadOptions {
        config: cli.config.clone(),
        watchlists: cli.watchlists.clone(),
        state_dir: cli.state_dir.clone(),
    };
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Demo { dir, serve: false } => crate::demo::run(dir.as_deref(), &mut out).await,
        Command::Demo { dir, serve: true } => crate::demo::serve(dir.as_deref(), &mut out).await,
        Command::Run { check_now } => {
            crate::daemon::run(
                crate::daemon::RunOptions {
                    load: opts,
                    check_now,
                },
                std::future::pending::<()>(),
            )
            .await?;
            Ok(0)
        }
        Command::Check => check(&opts, &mut out),
        Command::Once {
            sources,
            no_deliver,
            json,
            no_politeness,
        } => {
            let config = Arc::new(Config::load(&opts)?);
            let polite = !no_politeness;
            once(config, &sources, !no_deliver, json, polite, &mut out).await
        }
        Command::History { target, json } => {
            read_or_ask(&opts, ReadCommand::History { target, json }, &mut out).await
        }
        Command::Diff {
            target,
            from,
            to,
            json,
        } => {
            let cmd = ReadCommand::Diff {
                target,
                from,
                to,
                json,
            };
            read_or_ask(&opts, cmd, &mut out).await
        }
        Command::Findings {
            since,
            entity,
            json,
        } => {
            let cmd = ReadCommand::Findings {
                since,
                entity,
                json,
            };
            read_or_ask(&opts, cmd, &mut out).await
        }
        Command::Explain { entity, json } => {
            read_or_ask(&opts, ReadCommand::Explain { entity, json }, &mut out).await
        }
        Command::Outbox { action } => {
            let cmd = match action {
                None => ReadCommand::OutboxList { json: false },
                Some(crate::cli::OutboxAction::List { json }) => ReadCommand::OutboxList { json },
                Some(crate::cli::OutboxAction::Retry { id, all }) => ReadCommand::OutboxRetry {
                    id: if all { None } else { id },
                },
            };
            read_or_ask(&opts, cmd, &mut out).await
        }
        Command::SendTestEmail { subscriber } => {
            let config = Config::load(&opts)?;
            send_test_email(&config, &subscriber, &mut out).await
        }
        Command::Probe {
            url,
            fields,
            rows,
            cols,
            json_format,
            allow_private_addresses,
            no_politeness,
            json,
        } => {
            // Probe needs only the settings ([http]); no watchlist folder.
            let config = Config {
                settings: Config::load_settings(&opts)?,
                watchlists: vec![],
            };
            probe(
                &config,
                &url,
                &fields,
                rows.as_deref(),
                &cols,
                json_format,
                allow_private_addresses,
                !no_politeness,
                json,
                &mut out,
            )
            .await
        }
    }
}

/// Runs a read command on the store, or, while `pivotwatch run` holds the
/// store, inside the daemon through its control socket (same output, same
/// exit code; the daemon answers with its running configuration).
async fn read_or_ask(
    opts: &LoadOptions,
    cmd: ReadCommand,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    // These commands read the store: a watchlist with errors is left out
    // (with a warning), not a reason to refuse. Only broken settings are.
    let (config, skipped) = match Config::load_lenient(opts) {
        Ok(loaded) => loaded,
        Err(errors) => {
            // The files on disk have errors, but a running daemon still
            // answers with the configuration it loaded.
            let dir = crate::config::settings::state_dir_hint(
                opts.config.as_deref(),
                opts.state_dir.as_deref(),
            );
            if !crate::daemon::control::socket_path(&dir).exists() {
                return Err(errors.into());
            }
            let Ok(resp) = crate::daemon::control::request(&dir, cmd).await else {
                return Err(errors.into());
            };
            note!(
                "note: the configuration on disk has {} error(s) (`pivotwatch check` lists them); \
                 the running daemon answered with the configuration it loaded",
                errors.0.len()
            );
            return remote(resp, out);
        }
    };
    match Store::open(&config.settings.state_dir) {
        Ok(store) => {
            if !skipped.is_empty() {
                let mut files: Vec<String> = skipped
                    .iter()
                    .map(|d| d.path.display().to_string())
                    .collect();
                files.dedup();
                note!(
                    "warning: {} configuration error(s) in {}; the watchlist(s) with errors were left out \
                     (`pivotwatch check` lists the errors)",
                    skipped.len(),
                    files.join(", ")
                );
            }
            run_read(Arc::new(config), store, cmd, out).await
        }
        Err(StoreError::Locked { .. }) => {
            let resp = crate::daemon::control::request(&config.settings.state_dir, cmd).await?;
            if !skipped.is_empty() {
                note!(
                    "note: the configuration on disk has {} error(s) (`pivotwatch check` lists them); \
                     the running daemon answered with the configuration it loaded",
                    skipped.len()
                );
            }
            remote(resp, out)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints the daemon's answer to a read command and returns its exit code.
fn remote(resp: crate::daemon::control::Response, out: &mut impl Write) -> Result<u8, AppError> {
    out.write_all(resp.stdout.as_bytes())?;
    match resp.error {
        Some(message) => Err(AppError::Remote {
            message,
            code: resp.exit,
        }),
        None => Ok(resp.exit),
    }
}

/// Runs a read command (`history`, `diff`, `findings`, `explain`,
/// `outbox`) against an open store; the daemon's control socket calls this.
pub async fn run_read(
    config: Arc<Config>,
    store: Store,
    cmd: ReadCommand,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    match cmd {
        ReadCommand::History { target, json } => history(&config, &store, &target, json, out),
        ReadCommand::Diff {
            target,
            from,
            to,
            json,
        } => diff(&store, &target, from.as_deref(), to.as_deref(), json, out),
        ReadCommand::Findings {
            since,
            entity,
            json,
        } => findings(&store, since.as_deref(), entity.as_deref(), json, out),
        ReadCommand::Explain { entity, json } => explain(&config, &store, &entity, json, out),
        ReadCommand::OutboxList { json } => {
            outbox(
                &config,
                &store,
                Some(crate::cli::OutboxAction::List { json }),
                out,
            )
            .await
        }
        ReadCommand::OutboxRetry { id } => {
            let all = id.is_none();
            outbox(
                &config,
                &store,
                Some(crate::cli::OutboxAction::Retry { id, all }),
                out,
            )
            .await
        }
    }
}

fn check(opts: &LoadOptions, out: &mut impl Write) -> Result<u8, AppError> {
    let (config, warnings) = Config::load_checked(opts)?;
    for w in &warnings {
        note!("{w}");
    }
    // Reference data (shipped, plus `[reference] dir`) is configuration too.
    if let Err(e) = crate::classify::Reference::load(config.settings.reference_dir.as_deref()) {
        return Err(AppError::Config(ConfigErrors(vec![
            crate::config::Diagnostic {
                path: config.settings.reference_dir.clone().unwrap_or_default(),
                line: 0,
                col: 0,
                message: crate::text::chain(&e),
            },
        ])));
    }
    let entities = config.entities().count();
    let sources = config.sources().count();
    writeln!(
        out,
        "ok: settings {}, {} watchlist(s), {entities} entities, {sources} sources",
        config
            .settings
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built-in defaults)".into()),
        config.watchlists.len()
    )?;
    Ok(0)
}

/// `once`: checks the selected sources, then delivers queued alerts. With
/// `polite` (the default; `--no-politeness` turns it off) robots.txt and
/// the per-host limits apply as in `run`. A progress line is drawn on
/// stderr when it is a terminal, and a summary line ends the run.
pub async fn once(
    config: Arc<Config>,
    only: &[String],
    deliver: bool,
    json: bool,
    polite: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let mut selected = Vec::new();
    if only.is_empty() {
        for (e, s) in config.sources() {
            selected.push((e.id.clone(), s.id.clone()));
        }
    } else {
        for t in only {
            let Some((e, s)) = t.split_once('/') else {
                return Err(AppError::Usage(format!(
                    "--source {t:?}: write ENTITY/SOURCE"
                )));
            };
            if !config
                .entity(e)
                .is_some_and(|en| en.sources.iter().any(|x| x.id == s))
            {
                return Err(AppError::Usage(format!(
                    "--source {t:?}: no such source in the watchlists (see `pivotwatch check`)"
                )));
            }
            selected.push((e.to_string(), s.to_string()));
        }
    }
    let store = Store::open_with(
        &config.settings.state_dir,
        config.settings.store_write_timeout,
    )?;
    let mut checker = Checker::new(config.clone(), store.clone())?;
    if polite {
        let (p, robots) = politeness(&config);
        checker = checker.with_politeness(p, robots);
    }
    once_with_checker(checker, store, config, selected, deliver, json, true, out).await
}

/// robots.txt and per-host limits for `once` and `probe`, from the
/// settings, as `run` sets them up (fresh for each process: `Crawl-delay`
/// and `Retry-After` pauses are learnt during the run).
fn politeness(
    config: &Config,
) -> (
    Arc<crate::fetch::Politeness>,
    Option<Arc<crate::fetch::Robots>>,
) {
    let h = &config.settings.http;
    let overrides: Vec<_> = config
        .settings
        .hosts
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                crate::fetch::polite::HostLimits {
                    concurrency: s.concurrency,
                    interval: s.interval,
                },
            )
        })
        .collect();
    let polite = Arc::new(crate::fetch::Politeness::new(
        h.per_host_concurrency,
        h.per_host_interval,
        overrides,
    ));
    let robots = h.robots_txt.then(|| {
        Arc::new(crate::fetch::Robots::new(
            &h.user_agent,
            Some(polite.clone()),
        ))
    });
    (polite, robots)
}

/// `once` on an already opened store, with the sources already chosen
/// (the demo): no politeness, no progress line, no summary.
pub async fn once_with_store(
    store: Store,
    config: Arc<Config>,
    selected: Vec<(String, String)>,
    deliver: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let checker = Checker::new(config.clone(), store.clone())?;
    once_with_checker(checker, store, config, selected, deliver, json, false, out).await
}

/// What a `once` run did, for its summary line.
#[derive(Debug, Default)]
struct Tally {
    checked: usize,
    new: usize,
    changed: usize,
    failed: usize,
    blocked: usize,
    findings: usize,
}

impl Tally {
    fn add(&mut self, r: &CheckReport) {
        self.checked += 1;
        self.findings += r.finding_count;
        match r.status {
            CheckStatus::New => self.new += 1,
            CheckStatus::Changed => self.changed += 1,
            CheckStatus::Unchanged => {}
            CheckStatus::Failed => self.failed += 1,
            CheckStatus::Blocked => self.blocked += 1,
        }
    }

    /// `once: checked 12, changed 3, new 1, failed 1, blocked 0, findings 2; deliveries: 2 sent, 0 waiting, 0 dead`.
    fn line(&self, deliveries: Option<&crate::alert::DeliveryReport>) -> String {
        let mut s = format!(
            "once: checked {}, changed {}, new {}, failed {}, blocked {}, findings {}; ",
            self.checked, self.changed, self.new, self.failed, self.blocked, self.findings
        );
        match deliveries {
            None => s.push_str("deliveries: not attempted (--no-deliver)"),
            Some(report) => {
                use crate::alert::Outcome;
                let (mut sent, mut waiting, mut dead) = (0, 0, 0);
                for m in &report.mails {
                    let n = m.deliveries.len();
                    match m.outcome {
                        Outcome::Sent { .. } => sent += n,
                        Outcome::Dead { .. } => dead += n,
                        _ => waiting += n,
                    }
                }
                let _ = std::fmt::Write::write_fmt(
                    &mut s,
                    format_args!("deliveries: {sent} sent, {waiting} waiting, {dead} dead"),
                );
            }
        }
        s
    }
}

/// Output that outlives its reader: once the pipe is closed
/// (`pivotwatch once | head -1`), later writes are dropped instead of
/// failing, so the run still stores, delivers and exits as it would have.
struct Unpiped<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for Unpiped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

/// The progress line being drawn on stderr, if any: log lines are
/// written around it ([`LogWriter`]) instead of through it.
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Where the binary's log lines go: stderr, with `once`'s progress line
/// (when one is drawn) cleared for the line and drawn again after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = PROGRESS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

fn set_progress(bar: Option<indicatif::ProgressBar>) {
    *PROGRESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = bar;
}

/// The progress line of `once`, on stderr only when it is a terminal.
fn progress(show: bool, n: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(n as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{pos}/{len} sources checked [{elapsed}] {wide_msg}",
    ) {
        bar.set_style(style);
    }
    set_progress(Some(bar.clone()));
    bar
}

#[allow(clippy::too_many_arguments)]
async fn once_with_checker(
    checker: Checker,
    store: Store,
    config: Arc<Config>,
    selected: Vec<(String, String)>,
    deliver: bool,
    json: bool,
    summary: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let mut out = Unpiped {
        inner: out,
        closed: false,
    };
    let out = &mut out;
    // Reports are written as checks finish (in the order of `selected`),
    // not collected: at 100k sources the list alone was tens of MB.
    let mut table = ReportWriter::new(json, &selected);
    let mut failed = false;
    let mut write_error: Option<std::io::Error> = None;
    let mut tally = Tally::default();
    let bar = progress(summary, selected.len());
    checker
        .check_each(&selected, |r| {
            failed |= matches!(r.status, CheckStatus::Failed | CheckStatus::Blocked);
            tally.add(&r);
            if write_error.is_none()
                && let Err(e) = bar.suspend(|| table.write(&r, out))
            {
                write_error = Some(e);
            }
            bar.set_message(format!("{}/{} {}", r.entity, r.source, r.status));
            bar.inc(1);
        })
        .await;
    set_progress(None);
    bar.finish_and_clear();
    // The table's header even when no source was checked.
    if write_error.is_none()
        && let Err(e) = table.header(out)
    {
        write_error = Some(e);
    }
    // Commits that queued no delivery are not flushed one by one: one
    // flush here makes the whole pass durable.
    {
        let store = store.clone();
        crate::check::blocking(move || store.flush()).await?;
    }
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let mut delivered = None;
    if deliver {
        crate::alert::test_pause_before_delivery().await;
        let report = crate::alert::deliver_pending(&store, &config).await?;
        failed |= report.dead() > 0; // a mail refused for good is a failure
        if !json {
            print_delivery(&report, out)?;
        }
        delivered = Some(report);
    }
    if summary {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{}", tally.line(delivered.as_ref()));
    }
    Ok(if failed { EXIT_FAILED } else { 0 })
}

/// Writes check reports one at a time: JSON lines, or a table whose
/// column width comes from the selected sources' names.
struct ReportWriter {
    json: bool,
    width: usize,
    header: bool,
}

impl ReportWriter {
    fn new(json: bool, selected: &[(String, String)]) -> ReportWriter {
        let width = selected
            .iter()
            .map(|(e, s)| e.len() + s.len() + 1)
            .max()
            .unwrap_or(6)
            .max(6);
        ReportWriter {
            json,
            width,
            header: false,
        }
    }

    fn header(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.json || self.header {
            return Ok(());
        }
        self.header = true;
        let w = self.width;
        writeln!(
            out,
            "{:<w$}  {:<9}  {:>7}  {:>8}  ERROR",
            "SOURCE", "STATUS", "CHANGES", "FINDINGS"
        )
    }

    fn write(&mut self, r: &CheckReport, out: &mut impl Write) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        self.header(out)?;
        let w = self.width;
        writeln!(
            out,
            "{:<w$}  {:<9}  {:>7}  {:>8}  {}",
            format!("{}/{}", r.entity, r.source),
            r.status.to_string(),
            r.change_count,
            r.finding_count,
            for_display(r.error.as_deref().unwrap_or(""))
        )
    }
}

fn split_target(t: &str) -> (&str, Option<&str>) {
    match t.split_once('/') {
        Some((e, s)) => (e, Some(s)),
        None => (t, None),
    }
}

fn history(
    config: &Config,
    store: &Store,
    target: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
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
                return Err(AppError::Usage(format!(
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

fn resolve_ref(store: &Store, key: &str, ids: &[u64], r: &str) -> Result<Snapshot, AppError> {
    if let Ok(id) = r.parse::<u64>() {
        if !ids.contains(&id) {
            return Err(AppError::Usage(format!(
                "snapshot {id} is not in the history of {key}"
            )));
        }
        return store
            .snapshot(id)?
            .ok_or_else(|| AppError::Usage(format!("snapshot {id} not found")));
    }
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(r)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::Usage(format!(
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
    best.ok_or_else(|| AppError::Usage(format!("{key} has no snapshot at or before {r}")))
}

fn diff(
    store: &Store,
    target: &str,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let (entity, Some(source)) = split_target(target) else {
        return Err(AppError::Usage("diff needs ENTITY/SOURCE".into()));
    };
    let key = format!("{entity}/{source}");
    let ids = store.history(&key)?;
    if ids.is_empty() {
        return Err(AppError::Usage(format!(
            "{key} has no snapshots yet; run `pivotwatch once --source {key}`"
        )));
    }
    let to_snap = match to {
        Some(r) => resolve_ref(store, &key, &ids, r)?,
        None => store
            .snapshot(ids[ids.len() - 1])?
            .ok_or_else(|| AppError::Usage("latest snapshot missing".into()))?,
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

fn parse_since(s: &str) -> Result<DateTime<Utc>, AppError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        AppError::Usage(format!(
            "--since {s:?}: write a duration (24h, 7d) or an RFC 3339 time"
        ))
    })?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| AppError::Usage(format!("--since {s:?} is too long")))?;
    Ok(Utc::now() - d)
}

/// Prints a finding as the human listing shows it.
pub fn print_finding(f: &Finding, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "#{} {} {} {}/{} [{}]\n  {}",
        f.id,
        f.created_at.format("%Y-%m-%d %H:%M:%S"),
        f.severity.as_str().to_uppercase(),
        f.entity,
        f.source,
        f.rule,
        for_display(&f.summary)
    )?;
    for c in &f.evidence.changes {
        writeln!(out, "    - {}", for_display(&c.describe()))?;
    }
    Ok(())
}

fn findings(
    store: &Store,
    since: Option<&str>,
    entity: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let since = since.map(parse_since).transpose()?;
    for f in store.findings()? {
        if since.is_some_and(|t| f.created_at < t) || entity.is_some_and(|e| e != f.entity) {
            continue;
        }
        if json {
            writeln!(out, "{}", serde_json::to_string(&f).unwrap_or_default())?;
        } else {
            print_finding(&f, out)?;
        }
    }
    Ok(0)
}

fn split_kv(s: &str) -> Result<(String, String), AppError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| AppError::Usage(format!("{s:?}: write NAME=SELECTOR")))
}

fn html_field(sel: &str, all: bool) -> Result<HtmlField, AppError> {
    // `a.site@href` reads the href attribute.
    let (sel, attr) = match sel.rsplit_once('@') {
        Some((s, a))
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            (s, Some(a.to_string()))
        }
        _ => (sel, None),
    };
    HtmlField::new(sel, attr, all).map_err(AppError::Usage)
}

fn column(name: &str) -> Column {
    match name {
        "name" => Column::Name,
        "manufacturer" => Column::Manufacturer,
        "part_number" => Column::PartNumber,
        "price" => Column::Price,
        "link" => Column::Link,
        other => Column::Extra(other.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn probe(
    config: &Config,
    url: &str,
    fields: &[String],
    rows: Option<&str>,
    cols: &[String],
    json_format: bool,
    allow_private: bool,
    polite: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let url =
        url::Url::parse(url).map_err(|e| AppError::Usage(format!("invalid URL {url:?}: {e}")))?;
    let spec = if json_format {
        let mut s = JsonSpec::default();
        for f in fields {
            let (k, v) = split_kv(f)?;
            extract::check_pointer(&v).map_err(AppError::Usage)?;
            s.fields.push((
                k,
                JsonField {
                    pointer: v,
                    all: false,
                },
            ));
        }
        if let Some(r) = rows {
            extract::check_pointer(r).map_err(AppError::Usage)?;
            let mut columns = Vec::new();
            for c in cols {
                let (k, v) = split_kv(c)?;
                columns.push((
                    column(&k),
                    JsonField {
                        pointer: v,
                        all: false,
                    },
                ));
            }
            s.items = Some(JsonItems {
                row: r.to_string(),
                columns,
            });
        }
        ExtractSpec::Json(s)
    } else {
        let mut s = HtmlSpec {
            max_pages: 1,
            ..HtmlSpec::default()
        };
        for f in fields {
            let (k, v) = split_kv(f)?;
            s.fields.push((k, html_field(&v, false)?));
        }
        if fields.is_empty() && rows.is_none() {
            s.fields.push(("title".into(), html_field("title", false)?));
        }
        if let Some(r) = rows {
            let mut columns = Vec::new();
            for c in cols {
                let (k, v) = split_kv(c)?;
                columns.push((column(&k), html_field(&v, false)?));
            }
            if columns.is_empty() {
                columns.push((
                    Column::Name,
                    html_field(":scope", false).or_else(|_| html_field("*", false))?,
                ));
            }
            s.items = Some(HtmlItems {
                row: html_field(r, true)?,
                columns,
            });
        }
        ExtractSpec::Html(s)
    };
    let h = &config.settings.http;
    let fetcher = Fetcher::new(FetchOptions {
        user_agent: h.user_agent.clone(),
        connect_timeout: h.connect_timeout,
        timeout: h.timeout,
        max_body: h.max_body,
        max_redirects: h.max_redirects,
        allow_private_addresses: allow_private || h.allow_private_addresses,
    })?;
    // As `once` and `run`: robots.txt first (one request to a host
    // needs no spacing).
    if polite && let (_, Some(robots)) = politeness(config) {
        let verdict = robots.check(&fetcher, &url).await;
        if let Some(msg) = verdict.message(&url) {
            return Err(AppError::Blocked(format!(
                "{msg} (`--no-politeness` skips robots.txt for a site you run)"
            )));
        }
    }
    let resp = fetcher.fetch(&url, &Conditional::default()).await?;
    let record = match &spec {
        ExtractSpec::Html(s) => extract::extract_html(s, &resp.text, &resp.url)?.record,
        ExtractSpec::Json(s) => extract::extract_json(s, &resp.text)?,
    };
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&record).unwrap_or_default()
        )?;
        return Ok(0);
    }
    writeln!(
        out,
        "{} → HTTP {}, {} bytes, charset {}",
        for_display(resp.url.as_str()),
        resp.status,
        resp.body.len(),
        resp.charset
    )?;
    for (k, v) in &record.fields {
        writeln!(out, "field {k}: {}", for_display(&v.display()))?;
    }
    if !record.items.is_empty() {
        writeln!(out, "{} items:", record.items.len())?;
        for it in record.items.values() {
            let attrs = it.attributes();
            let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            writeln!(
                out,
                "  [{}] {}",
                for_display(&it.key),
                for_display(&parts.join(" "))
            )?;
        }
    }
    Ok(0)
}

/// `explain`: the entity's profile and every rule's verdict on the latest
/// change of each source.
pub fn explain(
    config: &Config,
    store: &Store,
    entity: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    use crate::detect;
    let Some(ent) = config.entity(entity) else {
        return Err(AppError::Usage(format!(
            "no entity {entity:?} in the watchlists"
        )));
    };
    let reference = crate::classify::Reference::load(config.settings.reference_dir.as_deref())
        .map_err(|e| AppError::Usage(crate::text::chain(&e)))?;
    let mut snaps: Vec<(&crate::config::Source, Option<Snapshot>, Option<Snapshot>)> = Vec::new();
    for s in &ent.sources {
        let ids = store.history(&s.key())?;
        let cur = match ids.last() {
            Some(id) => store.snapshot(*id)?,
            None => None,
        };
        let prev = match ids.len().checked_sub(2) {
            Some(i) => store.snapshot(ids[i])?,
            None => None,
        };
        snaps.push((s, cur, prev));
    }
    let changes: Vec<Vec<crate::record::Change>> = snaps
        .iter()
        .map(|(_, cur, prev)| match (prev, cur) {
            (Some(p), Some(c)) => crate::diff::diff(&p.record, &c.record),
            _ => Vec::new(),
        })
        .collect();
    let observed: Vec<detect::Observation<'_>> = snaps
        .iter()
        .zip(&changes)
        .filter_map(|((s, cur, prev), changes)| {
            Some(detect::Observation {
                source: s,
                previous: prev.as_ref(),
                current: cur.as_ref()?,
                changes,
            })
        })
        .collect();
    let default_rules = detect::RuleConfig::default();
    let scope = detect::Scope {
        reference: &reference,
        rules: config
            .watchlist_of(ent)
            .map_or(&default_rules, |w| &w.rules),
        entity: ent,
        now: chrono::Utc::now(),
    };
    // Every verdict is shown, whether or not its finding was raised before.
    let detect::Assessment {
        profile,
        mut verdicts,
        ..
    } = detect::assess(&scope, &observed, &[], &|_| false);
    // The profile rule judges the entity, not a source: show it once, as
    // seen from the catalogue when there is one.
    let pm = crate::detect::ids::PROFILE_MISMATCH;
    let keep = verdicts
        .iter()
        .rposition(|(s, v)| {
            v.rule == pm
                && ent
                    .sources
                    .iter()
                    .any(|x| &x.id == s && x.kind == crate::config::SourceKind::Catalogue)
        })
        .or_else(|| verdicts.iter().position(|(_, v)| v.rule == pm));
    let mut i = 0;
    verdicts.retain(|(_, v)| {
        let k = v.rule != pm || Some(i) == keep;
        i += 1;
        k
    });
    if let Some(p) = verdicts.iter().position(|(_, v)| v.rule == pm) {
        let v = verdicts.remove(p);
        verdicts.insert(0, ("(entity)".to_string(), v.1));
    }
    if json {
        let v = serde_json::json!({
            "entity": ent.id,
            "name": ent.name,
            "watchlist": ent.watchlist,
            "profile": {
                "declared": profile.declared,
                "registered": profile.registered,
                "registered_text": profile.registered_text,
                "sectors": profile.sectors(),
                "items": profile.items.len(),
                "controlled": profile.controlled(0.5).iter().map(|i| i.evidence()).collect::<Vec<_>>(),
                "by_tier": profile.by_tier().iter().map(|(t, n)| (t.as_str().to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "by_manufacturer": profile.by_manufacturer(),
            },
            "rules": verdicts.iter().map(|(s, v)| serde_json::json!({
                "source": s, "rule": v.rule, "enabled": v.enabled, "fires": v.finding.is_some(),
                "severity": v.finding.as_ref().map(|f| f.severity), "reason": v.reason,
                "summary": v.finding.as_ref().map(|f| f.summary.clone()),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(0);
    }
    writeln!(
        out,
        "{} ({}), watchlist {}",
        for_display(&ent.name),
        ent.id,
        ent.watchlist
    )?;
    let acts = |v: &[crate::classify::ActivityMatch]| -> String {
        if v.is_empty() {
            return "(none known)".into();
        }
        v.iter()
            .map(|m| {
                format!(
                    "{}:{} {} [{}]",
                    for_display(&m.scheme),
                    for_display(&m.code),
                    for_display(&m.label),
                    m.sector
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    writeln!(out, "declared activity:   {}", acts(&profile.declared))?;
    if !profile.registered_text.is_empty() {
        writeln!(
            out,
            "registry says:       {}",
            for_display(&profile.registered_text.join("; "))
        )?;
    }
    writeln!(out, "registered activity: {}", acts(&profile.registered))?;
    let controlled = profile.controlled(0.5);
    writeln!(
        out,
        "catalogue:           {} items, {} controlled (CHPL tier or listed manufacturer)",
        profile.items.len(),
        controlled.len()
    )?;
    for (t, n) in profile.by_tier() {
        writeln!(out, "  {t}: {n}")?;
    }
    for (m, (country, n)) in profile.by_manufacturer() {
        writeln!(out, "  {m} ({country}): {n}")?;
    }
    for i in &controlled {
        let e = i.evidence();
        writeln!(
            out,
            "  - {:<20} {:<20} {:<24} HS {:<8} {:<9} confidence {:.2}",
            for_display(&e.part_number.clone().or(e.name.clone()).unwrap_or_default()),
            for_display(&e.manufacturer.clone().unwrap_or_else(|| "-".into())),
            for_display(&e.family.clone().unwrap_or_else(|| "-".into())),
            for_display(&e.hs_code.clone().unwrap_or_else(|| "-".into())),
            e.tier
                .map(|t| format!("Tier {t}"))
                .unwrap_or_else(|| "-".into()),
            e.confidence
        )?;
        for r in &i.class.reasons {
            writeln!(out, "      {}", for_display(r))?;
        }
    }
    writeln!(out, "rules (on the latest change of each source):")?;
    for (s, v) in &verdicts {
        let state = match (&v.finding, v.enabled) {
            (_, false) => "off".to_string(),
            (Some(f), true) => format!("FIRES {}", f.severity.as_str().to_uppercase()),
            (None, true) => "quiet".to_string(),
        };
        writeln!(
            out,
            "  {:<18} {:<12} {:<15} {}",
            v.rule,
            s,
            state,
            for_display(&v.reason)
        )?;
        if let Some(f) = &v.finding {
            writeln!(
                out,
                "  {:<18} {:<12} {:<15} {}",
                "",
                "",
                "",
                for_display(&f.summary)
            )?;
        }
    }
    Ok(0)
}

fn alert_usage(e: crate::alert::AlertError) -> AppError {
    use crate::alert::AlertError as A;
    match e {
        A::UnknownSubscriber(_) | A::UnknownDelivery(_) => AppError::Usage(crate::text::chain(&e)),
        other => AppError::Alert(other),
    }
}

/// Prints what a delivery run did, one line per mail.
pub fn print_delivery(
    report: &crate::alert::DeliveryReport,
    out: &mut impl Write,
) -> std::io::Result<()> {
    use crate::alert::Outcome;
    for m in &report.mails {
        let first = m.deliveries.first();
        let what = if m.digest {
            format!("digest of {} finding(s)", m.deliveries.len())
        } else {
            format!(
                "alert for finding {}",
                first.map(|d| d.finding).unwrap_or_default()
            )
        };
        let id = first.map(|d| d.id).unwrap_or_default();
        match &m.outcome {
            Outcome::Sent { file: Some(f), .. } => writeln!(out, "alert written: {}", f.display())?,
            Outcome::Sent { reply, file: None } => writeln!(
                out,
                "{what} sent to {}: {} ({})",
                m.subscriber,
                for_display(&m.subject),
                for_display(reply)
            )?,
            Outcome::Retry {
                error,
                next_attempt,
            } => writeln!(
                out,
                "{what} to {} still queued (delivery {id}, next attempt {}): {}",
                m.subscriber,
                next_attempt.format("%Y-%m-%d %H:%M:%S UTC"),
                for_display(error)
            )?,
            Outcome::Dead { error } => writeln!(
                out,
                "{what} to {} failed permanently (dead letter {id}; fix the cause, then `pivotwatch outbox retry {id}`): {}",
                m.subscriber,
                for_display(error)
            )?,
            Outcome::Deferred {
                error,
                next_attempt,
            } => writeln!(
                out,
                "{what} to {} deferred to {}: {}",
                m.subscriber,
                next_attempt.format("%Y-%m-%d %H:%M:%S UTC"),
                for_display(error)
            )?,
            Outcome::Held { reason } => writeln!(
                out,
                "{} alert(s) for {} held: {}",
                m.deliveries.len(),
                m.subscriber,
                for_display(reason)
            )?,
        }
        if m.possible_duplicate {
            writeln!(
                out,
                "  an earlier attempt was interrupted: it may arrive twice, with the same Message-ID {}",
                m.message_id
            )?;
        }
    }
    Ok(())
}

fn delivery_state(d: &crate::store::Delivery) -> &'static str {
    if d.dead {
        "dead"
    } else if d.next_attempt.is_some() {
        "retry"
    } else {
        "queued"
    }
}

/// `outbox [list | retry ID | retry --all]`.
pub async fn outbox(
    config: &Config,
    store: &Store,
    action: Option<crate::cli::OutboxAction>,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    use crate::cli::OutboxAction;
    match action.unwrap_or(OutboxAction::List { json: false }) {
        OutboxAction::List { json } => {
            let all = store.outbox_all()?;
            if json {
                for d in &all {
                    let mut v = serde_json::to_value(d).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("state".into(), delivery_state(d).into());
                    }
                    writeln!(out, "{v}")?;
                }
                return Ok(0);
            }
            if all.is_empty() {
                writeln!(
                    out,
                    "outbox empty: every alert was delivered ({} in the delivery log)",
                    store.sent_deliveries()?.len()
                )?;
                return Ok(0);
            }
            writeln!(
                out,
                "{:>8}  {:<6}  {:<16}  {:>8}  {:>8}  {:<20}  LAST ERROR",
                "ID", "STATE", "SUBSCRIBER", "FINDING", "ATTEMPTS", "NEXT ATTEMPT"
            )?;
            for d in &all {
                let mode = crate::alert::subscriber(&config.settings, &d.subscriber)
                    .is_some_and(|s| s.mode == crate::config::DeliveryMode::Digest);
                writeln!(
                    out,
                    "{:>8}  {:<6}  {:<16}  {:>8}  {:>8}  {:<20}  {}",
                    d.id,
                    delivery_state(d),
                    if mode {
                        format!("{} (digest)", d.subscriber)
                    } else {
                        d.subscriber.clone()
                    },
                    d.finding,
                    d.attempts,
                    d.next_attempt
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into()),
                    for_display(d.last_error.as_deref().unwrap_or(""))
                )?;
            }
            let dead = all.iter().filter(|d| d.dead).count();
            writeln!(
                out,
                "{} pending, {dead} dead; `pivotwatch outbox retry ID` or `--all` requeues and sends",
                all.len() - dead
            )?;
            Ok(0)
        }
        OutboxAction::Retry { id, all } => {
            let id = if all { None } else { id };
            let requeued = crate::alert::requeue(store, id).map_err(alert_usage)?;
            writeln!(out, "requeued {} delivery(ies)", requeued.len())?;
            let report = crate::alert::deliver_pending(store, config).await?;
            print_delivery(&report, out)?;
            Ok(0)
        }
    }
}

/// `send-test-email SUBSCRIBER`: a test mail, sent now.
pub async fn send_test_email(
    config: &Config,
    name: &str,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let (via, mail, ok) = crate::alert::send_test_email(config, name)
        .await
        .map_err(alert_usage)?;
    let to = crate::alert::subscriber(&config.settings, name)
        .map(|s| s.to.join(", "))
        .unwrap_or_default();
    writeln!(out, "test mail sent to {to} via {via}: {}", ok.reply)?;
    writeln!(out, "Message-ID: {}", mail.message_id)?;
    Ok(0)
}
