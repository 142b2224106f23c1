//! The application layer: the command line's commands, one file each,
//! and the built-in demo. Each command returns the process exit code;
//! output goes to stdout, diagnostics to stderr. This module dispatches
//! and routes the read commands ([`crate::read`]) to the store, or to the
//! daemon's control socket while `pivotwatch run` holds the store.
//!
//! **Architecture Invariant:** nothing below `app` (and `cli`) imports
//! it: the daemon's control socket runs `read::run` itself, and the demo
//! lives here.

/// A line on stderr for the person at the terminal; a closed stderr is
/// not worth a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod check;
pub mod demo;
mod import;
mod once;
mod probe;
mod progress;
mod send_test_email;

use std::io::Write;
use std::sync::Arc;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigErrors, LoadOptions};
use crate::read::{ReadCommand, ReadError};
use crate::store::{Store, StoreError};

pub use once::{once, once_with_store};
pub use progress::LogWriter;
pub use send_test_email::send_test_email;

pub use crate::read::{EXIT_FAILED, EXIT_USAGE};
/// Exit code: invalid configuration (systemd: `RestartPreventExitStatus=3`).
pub const EXIT_CONFIG: u8 = 3;

/// Errors a command may end with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A registry adapter could not read its record (`probe --adapter`).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
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
    /// A read command failed.
    #[error(transparent)]
    Read(#[from] ReadError),
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
        match self {
            // Transparent: the chain starts below the io error itself.
            AppError::Io(io) => crate::text::is_broken_pipe(io),
            AppError::Read(r) => r.is_broken_pipe(),
            _ => crate::text::is_broken_pipe(self),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => EXIT_CONFIG,
            AppError::Usage(_) => EXIT_USAGE,
            AppError::Remote { code, .. } => *code,
            AppError::Read(r) => r.exit_code(),
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
        check_address: Some(crate::alert::check_address),
    };
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Demo { dir, serve: false } => {
            crate::app::demo::run(dir.as_deref(), &mut out).await
        }
        Command::Demo { dir, serve: true } => {
            crate::app::demo::serve(dir.as_deref(), &mut out).await
        }
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
        Command::Check => check::check(&opts, &mut out),
        Command::Import {
            file,
            dry_run,
            into,
        } => {
            let dir = opts
                .watchlists
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from("watchlists"));
            import::import(
                &file,
                into.as_deref(),
                &dir,
                dry_run,
                &mut out,
                &mut std::io::stderr().lock(),
            )
        }
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
        Command::Read(args) => read_or_ask(&opts, args.into_command(), &mut out).await,
        Command::Restore { file } => {
            let settings = Config::load_settings(&opts)?;
            let dir = settings.state_dir.clone();
            let r = crate::store::blocking(move || crate::store::restore(&file, &dir)).await?;
            crate::read::print_backup(&r, "Restored and verified", &mut out)?;
            Ok(0)
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
            adapter,
            site,
        } => {
            // Probe needs only the settings ([http]); no watchlist folder.
            let config = Config {
                settings: Config::load_settings(&opts)?,
                watchlists: vec![],
            };
            if let Some(adapter) = adapter {
                return probe::probe_adapter(
                    &config,
                    &adapter,
                    &url,
                    allow_private_addresses,
                    json,
                    &mut out,
                )
                .await;
            }
            if site {
                return probe::probe_site(
                    &config,
                    &url,
                    allow_private_addresses,
                    !no_politeness,
                    json,
                    &mut out,
                )
                .await;
            }
            probe::probe(
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
            Ok(crate::read::run(Arc::new(config), store, cmd, out).await?)
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

/// robots.txt and per-host limits for `once` and `probe`, from the
/// settings, as `run` sets them up (fresh for each process: `Crawl-delay`
/// and `Retry-After` pauses are learnt during the run).
pub(crate) fn politeness(
    config: &Config,
) -> (
    Arc<crate::fetch::Politeness>,
    Option<Arc<crate::fetch::Robots>>,
) {
    let (c, i, o) = crate::check::host_limits(config);
    let polite = Arc::new(crate::fetch::Politeness::new(c, i, o));
    let robots = crate::check::robots_for(config, &polite);
    (polite, robots)
}
