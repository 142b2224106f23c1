//! The `pivotwatch` binary: parses the command line, sets up logging and
//! hands over to the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use pivotwatch::app;
use pivotwatch::cli::Cli;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Logs go to stderr: human-readable (colours only when stderr is a
/// terminal and `NO_COLOR` is not set) or JSON lines. Without `RUST_LOG`,
/// pivotwatch's warnings and errors are shown, each with the spans it
/// happened in (`check{entity=… source=… host=…}`), so a line always says
/// which source it is about.
fn init_logging(json: bool, rust_log: Option<&str>) {
    let ansi = pivotwatch::cli::colours_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(app::LogWriter)
        .with_ansi(ansi);
    let layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        layer.json().boxed()
    } else {
        layer.boxed()
    };
    let layer = match rust_log.map(EnvFilter::try_new) {
        Some(Ok(filter)) => layer.with_filter(filter).boxed(),
        // An unset or unreadable RUST_LOG means the default below.
        Some(Err(_)) | None => layer
            .with_filter(
                tracing_subscriber::filter::filter_fn(|m| {
                    m.target().starts_with("pivotwatch")
                        && (*m.level() <= tracing::Level::WARN
                            || (m.is_span() && *m.level() <= tracing::Level::INFO))
                })
                // The hint lets `debug!`/`trace!` call sites (ours, and the
                // `log` records of html5ever and sled, which the bridge
                // installed by `try_init` would otherwise forward one by
                // one) be skipped at a static level compare: without it
                // they were a third of a first pass's CPU.
                .with_max_level_hint(tracing::level_filters::LevelFilter::INFO),
            )
            .boxed(),
    };
    let _ = Registry::default().with(layer).try_init();
}

/// glibc's malloc, tuned for a process whose threads each read pages of
/// 20–500 KB: at most two arenas (one per core; by default up to eight
/// per core, each keeping its own freed pages), and allocations of 64 KiB
/// and more (page bodies, decompressed text) mapped and unmapped on their
/// own rather than left in an arena after the page is done. A 1000-page
/// first pass peaks at ~52 MiB instead of ~80 (BENCHMARKS.md, issue 16).
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` in the environment win.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only sets a parameter of the allocator; it is
            // called before any other thread exists.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) };
        }
    }
}

/// The daemon runs on a multi-threaded runtime: its status endpoint and
/// scheduler stay responsive while a worker is busy. Every other command
/// is one pass of I/O on one async thread; its CPU work (extraction, the
/// store) already runs on the blocking pool, so a second async worker only
/// added cross-thread wake-ups: a 1000-source no-change recheck took ~15 %
/// less CPU on the current-thread runtime, a first pass the same
/// (BENCHMARKS.md, issue 16, 2026-12-03 afternoon).
fn runtime_builder(command: &pivotwatch::cli::Command) -> tokio::runtime::Builder {
    match command {
        pivotwatch::cli::Command::Run { .. } => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    init_logging(cli.log_json, std::env::var("RUST_LOG").ok().as_deref());

    let runtime = match runtime_builder(&cli.command).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {}",
                pivotwatch::text::chain(&e)
            );
            return ExitCode::from(app::EXIT_FAILED);
        }
    };
    let result = runtime.block_on(app::run(cli));
    // Work still on the blocking pool (a check abandoned at the end of the
    // grace period, e.g. a page being parsed) must not hold the exit: the
    // runtime's drop would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`pivotwatch findings | head -1`): what it
        // wanted was written; stop quietly, as ripgrep does.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            if let app::AppError::Config(errs) = &e {
                for d in &errs.0 {
                    let _ = writeln!(err, "{d}");
                }
                let _ = writeln!(
                    err,
                    "error: {} configuration error(s); nothing was loaded",
                    errs.0.len()
                );
            } else {
                let _ = writeln!(err, "error: {}", pivotwatch::text::chain(&e));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    /// html5ever and sled emit a `log` record per token or page; with the
    /// default filter they must stop at `log`'s static level compare, not
    /// be forwarded to tracing one by one.
    #[test]
    fn by_default_debug_records_stop_at_the_level_compare() {
        super::init_logging(false, None);
        assert!(
            log::max_level() <= log::LevelFilter::Info,
            "log's max level is {}",
            log::max_level()
        );
        assert!(tracing::level_filters::LevelFilter::current() <= tracing::Level::INFO);
    }
}
