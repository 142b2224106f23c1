//! `once`: checks the selected sources now, stores, detects and delivers.

use std::io::Write;
use std::sync::Arc;

use super::progress::{progress, set_progress};
use super::{AppError, EXIT_FAILED, politeness};
use crate::check::{CheckReport, Checker};
use crate::config::Config;
use crate::record::CheckStatus;
use crate::store::Store;
use crate::text::for_display;

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
    // Borrowed from the configuration: at 100k sources owned copies of
    // every id were ~10 MB of a pass's peak.
    let mut selected: Vec<(&str, &str)> = Vec::new();
    if only.is_empty() {
        for (e, s) in config.sources() {
            selected.push((&e.id, &s.id));
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
            selected.push((e, s));
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
    once_with_checker(
        checker,
        store,
        config.clone(),
        &selected,
        deliver,
        json,
        true,
        out,
    )
    .await
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
    once_with_checker(checker, store, config, &selected, deliver, json, false, out).await
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

#[allow(clippy::too_many_arguments)]
async fn once_with_checker<E: AsRef<str>, S: AsRef<str>>(
    checker: Checker,
    store: Store,
    config: Arc<Config>,
    selected: &[(E, S)],
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
    let mut table = ReportWriter::new(json, selected);
    let mut failed = false;
    let mut write_error: Option<std::io::Error> = None;
    let mut tally = Tally::default();
    let bar = progress(summary, selected.len());
    checker
        .check_each(selected, |r| {
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
        crate::store::blocking(move || store.flush()).await?;
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
            crate::read::print_delivery(&report, out)?;
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
    fn new<E: AsRef<str>, S: AsRef<str>>(json: bool, selected: &[(E, S)]) -> ReportWriter {
        let width = selected
            .iter()
            .map(|(e, s)| e.as_ref().len() + s.as_ref().len() + 1)
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
