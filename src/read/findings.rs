//! `findings [--since] [--entity]`: the findings recorded.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::ReadError;
use crate::record::Finding;
use crate::store::Store;
use crate::text::for_display;

pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, ReadError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        ReadError::Usage(format!(
            "--since {s:?}: write a duration (24h, 7d) or an RFC 3339 time"
        ))
    })?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| ReadError::Usage(format!("--since {s:?} is too long")))?;
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

pub(crate) fn findings(
    store: &Store,
    since: Option<&str>,
    entity: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    let since = since.map(parse_since).transpose()?;
    store.each_finding(|f| -> Result<(), ReadError> {
        if since.is_some_and(|t| f.created_at < t) || entity.is_some_and(|e| e != f.entity) {
            return Ok(());
        }
        if json {
            writeln!(out, "{}", serde_json::to_string(&f).unwrap_or_default())?;
        } else {
            print_finding(&f, out)?;
        }
        Ok(())
    })?;
    Ok(0)
}
