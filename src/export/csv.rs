//! `export csv`: one row per finding, for spreadsheets (the `csv` crate:
//! RFC 4180 quoting, a header row).
//!
//! Scraped text that a spreadsheet would take for a formula (a cell
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
//! prefixed with `'`, as OWASP advises against CSV injection; the exact
//! text stays in `findings --json` and the bundles.

use std::io::Write;

use super::{ExportError, Filter};
use crate::config::Config;
use crate::store::Store;

const HEADER: [&str; 16] = [
    "id",
    "created_at",
    "severity",
    "entity",
    "entity_name",
    "source",
    "watchlist",
    "rule",
    "summary",
    "url",
    "snapshot",
    "previous_snapshot",
    "changes",
    "part_numbers",
    "explanation",
    "evidence_command",
];

pub(super) fn export(
    config: &Config,
    store: &Store,
    filter: &Filter,
    w: &mut dyn Write,
) -> Result<(), ExportError> {
    let mut out = csv::Writer::from_writer(w);
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => ExportError::Io(io),
        other => ExportError::Io(std::io::Error::other(format!("{other:?}"))),
    };
    out.write_record(HEADER).map_err(csv_err)?;
    store.each_finding(|f| -> Result<(), ExportError> {
        if !filter.covers_finding(&f) {
            return Ok(());
        }
        let name = config
            .entity(&f.entity)
            .map_or_else(|| f.entity.clone(), |e| e.name.clone());
        let opt = |v: Option<u64>| v.map(|i| i.to_string()).unwrap_or_default();
        let parts: Vec<&str> = f
            .evidence
            .items
            .iter()
            .map(|i| i.part_number.as_deref().unwrap_or(&i.key))
            .collect();
        let changes: Vec<String> = f.evidence.changes.iter().map(|c| c.describe()).collect();
        out.write_record([
            f.id.to_string(),
            f.created_at.to_rfc3339(),
            f.severity.as_str().to_string(),
            f.entity.clone(),
            cell(&name),
            f.source.clone(),
            cell(&f.watchlist),
            f.rule.clone(),
            cell(&f.summary),
            cell(&f.evidence.url),
            opt(f.evidence.snapshot),
            opt(f.evidence.previous_snapshot),
            cell(&changes.join("\n")),
            cell(&parts.join("; ")),
            cell(&f.explanation),
            f.evidence_command(),
        ])
        .map_err(csv_err)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// Text as a cell a spreadsheet shows as text, never runs as a formula.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formula_looking_cells_are_quoted_as_text() {
        assert_eq!(super::cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(super::cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::cell("Copper scrap"), "Copper scrap");
    }
}
