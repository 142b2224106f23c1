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
///
/// Such a pass also keeps its blocking pool to [`pass_blocking_threads`]
/// threads. Left to tokio's default (up to 512), a 1000-page first pass
/// ran 18 of them on two cores. Bounded at 4, it made 25.4–27.0k context
/// switches instead of 28.4–31.2k; its CPU, peak RSS and the 100k
/// no-change pass stayed within their noise (BENCHMARKS.md, issue 16,
/// 2026-12-04). No blocking task of a pass waits for another one, so the
/// bound can only queue work, never deadlock. The daemon keeps the
/// default: its status page reads the store on the blocking pool, and it
/// must answer while writes are stuck on a failing disk.
fn runtime_builder(command: &pivotwatch::cli::Command) -> tokio::runtime::Builder {
    match command {
        pivotwatch::cli::Command::Run { .. } => tokio::runtime::Builder::new_multi_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_current_thread();
            b.max_blocking_threads(pass_blocking_threads());
            b
        }
    }
}

/// Blocking-pool threads of a one-pass command: two per core, at least 4.
fn pass_blocking_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .saturating_mul(2)
        .max(4)
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use clap::Parser;

    fn command(args: &[&str]) -> pivotwatch::cli::Command {
        pivotwatch::cli::Cli::try_parse_from(args)
            .expect("arguments")
            .command
    }

    /// Runs `tasks` blocking tasks on the runtime that `args` gets, each
    /// waiting at a barrier of `barrier` parties (the rest just pause a
    /// moment), and gives the most that ran at once, or `None` when they
    /// did not all finish within 60 s.
    fn most_at_once(args: &[&str], tasks: usize, barrier: usize) -> Option<usize> {
        let (tx, rx) = std::sync::mpsc::channel();
        let command = command(args);
        std::thread::spawn(move || {
            let rt = super::runtime_builder(&command)
                .enable_all()
                .build()
                .expect("runtime");
            let now = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let wait = Arc::new(std::sync::Barrier::new(barrier));
            rt.block_on(async {
                let jobs: Vec<_> = (0..tasks)
                    .map(|i| {
                        let (now, most, wait) = (now.clone(), most.clone(), wait.clone());
                        tokio::task::spawn_blocking(move || {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(n, Ordering::SeqCst);
                            if i < barrier {
                                wait.wait();
                            } else {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            now.fetch_sub(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                for j in jobs {
                    j.await.expect("task");
                }
            });
            let _ = tx.send(most.load(Ordering::SeqCst));
        });
        rx.recv_timeout(Duration::from_secs(60)).ok()
    }

    /// A one-pass command's blocking pool never runs more threads than
    /// its bound, however many tasks are queued; they all still run.
    #[test]
    fn a_pass_keeps_its_blocking_pool_bounded() {
        let bound = super::pass_blocking_threads();
        assert!(bound >= 4);
        let most = most_at_once(&["pivotwatch", "once"], 40, 0).expect("the tasks finished");
        assert!(
            most <= bound,
            "{most} blocking threads at once, bound {bound}"
        );
        assert!(most >= 2, "the tasks ran one at a time");
    }

    /// The daemon's pool is not bounded that low: 16 tasks that can only
    /// finish together (a barrier) all run at once.
    #[test]
    fn the_daemon_blocking_pool_takes_more_than_a_pass() {
        let most = most_at_once(&["pivotwatch", "run"], 16, 16)
            .expect("16 blocking tasks ran at once on the daemon's runtime");
        assert_eq!(most, 16);
    }

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
