//! The `pivotwatch` binary: parses the command line, sets up logging and
//! hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use pivotwatch::app;
use pivotwatch::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("pivotwatch=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cli.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
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
        Err(e) => {
            let e = anyhow::Error::from(e);
            let code = e
                .downcast_ref::<app::AppError>()
                .map(app::AppError::exit_code)
                .unwrap_or(app::EXIT_FAILED);
            match e.downcast_ref::<app::AppError>() {
                Some(app::AppError::Config(errs)) => {
                    for d in &errs.0 {
                        eprintln!("{d}");
                    }
                    eprintln!(
                        "error: {} configuration error(s); nothing was loaded",
                        errs.0.len()
                    );
                }
                _ => eprintln!("error: {e:#}"),
            }
            ExitCode::from(code)
        }
    }
}
