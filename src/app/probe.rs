//! `probe URL`: an extractor tried on a live page.

use std::io::Write;

use super::{AppError, politeness};
use crate::config::{Config, SpecBuilder};
use crate::extract::{self, ExtractSpec};
use crate::fetch::{Conditional, FetchOptions, Fetcher};
use crate::text::for_display;

fn split_kv(s: &str) -> Result<(String, String), AppError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| AppError::Usage(format!("{s:?}: write NAME=SELECTOR")))
}

/// `a.site@href` reads the href attribute (HTML only).
fn selector_attr(sel: &str) -> (&str, Option<&str>) {
    match sel.rsplit_once('@') {
        Some((s, a))
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            (s, Some(a))
        }
        _ => (sel, None),
    }
}

/// The spec `--field`, `--rows` and `--col` describe, compiled by the
/// configuration's builder, as a watchlist source would be.
fn spec(
    fields: &[String],
    rows: Option<&str>,
    cols: &[String],
    json_format: bool,
) -> Result<ExtractSpec, AppError> {
    let mut b = if json_format {
        SpecBuilder::json()
    } else {
        SpecBuilder::html()
    };
    let target = |v: &str| -> (String, Option<String>) {
        if json_format {
            (v.to_string(), None)
        } else {
            let (s, a) = selector_attr(v);
            (s.to_string(), a.map(str::to_string))
        }
    };
    for f in fields {
        let (k, v) = split_kv(f)?;
        let (t, attr) = target(&v);
        b.field(&k, &t, attr.as_deref()).map_err(AppError::Usage)?;
    }
    if !json_format && fields.is_empty() && rows.is_none() {
        b.field("title", "title", None).map_err(AppError::Usage)?;
    }
    if let Some(r) = rows {
        let mut columns = Vec::new();
        for c in cols {
            let (k, v) = split_kv(c)?;
            let (t, attr) = target(&v);
            columns.push((k, t, attr));
        }
        let (row, row_attr) = target(r);
        b.items(&row, row_attr.as_deref(), &columns)
            .map_err(AppError::Usage)?;
    }
    Ok(b.build())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn probe(
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
    let spec = spec(fields, rows, cols, json_format)?;
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
    if let ExtractSpec::Html(s) = &spec {
        let engine = s.engine_name();
        match extract::stream_fallback_reason(s, &resp.text, &resp.url) {
            Some(why) if engine == "stream" => {
                writeln!(out, "extractor: stream (this page through the DOM: {why})")?
            }
            _ => writeln!(out, "extractor: {engine}")?,
        }
    }
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
