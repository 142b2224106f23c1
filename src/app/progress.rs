//! `once`'s progress line on stderr, and the log writer that draws around it.

use std::io::Write;

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

pub(super) fn set_progress(bar: Option<indicatif::ProgressBar>) {
    *PROGRESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = bar;
}

/// The progress line of `once`, on stderr only when it is a terminal.
pub(super) fn progress(show: bool, n: usize) -> indicatif::ProgressBar {
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
