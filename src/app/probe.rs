//! `probe URL`: an extractor tried on a live page.

use std::io::Write;

use super::{AppError, politeness};
use crate::config::{Config, SpecBuilder};
use crate::extract::{self, ExtractSpec};
use crate::fetch::{Conditional, Fetcher};
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

/// `probe --adapter NAME ID`: the record a registry adapter yields, with
/// the URL (never a credential) and the number of requests it took.
pub(super) async fn probe_adapter(
    config: &Config,
    name: &str,
    id: &str,
    allow_private: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let adapter = crate::config::parse_adapter(name, id).map_err(AppError::Usage)?;
    let h = &config.settings.http;
    let fetcher = Fetcher::new(h.fetch_options(allow_private || h.allow_private_addresses))?;
    let registries = &config.settings.registries;
    let fetched = crate::registry::fetch(&fetcher, registries, &adapter).await?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&fetched.record).unwrap_or_default()
        )?;
        return Ok(0);
    }
    writeln!(
        out,
        "{} → {} {}, HTTP {}, {} request{}, {} bytes",
        for_display(registries.url(&adapter).as_str()),
        adapter.name(),
        for_display(&adapter.identifier()),
        fetched.status,
        fetched.requests,
        if fetched.requests == 1 { "" } else { "s" },
        fetched.body.len()
    )?;
    for (k, v) in &fetched.record.fields {
        match v {
            crate::record::FieldValue::Text(t) => writeln!(out, "field {k}: {}", for_display(t))?,
            crate::record::FieldValue::List(l) => {
                writeln!(
                    out,
                    "field {k}: {} value{}",
                    l.len(),
                    if l.len() == 1 { "" } else { "s" }
                )?;
                for v in l {
                    writeln!(out, "  {}", for_display(v))?;
                }
            }
        }
    }
    Ok(0)
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
    let fetcher = Fetcher::new(h.fetch_options(allow_private || h.allow_private_addresses))?;
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
        ExtractSpec::Html(s) => {
            let clock = crate::check::ParseClock::start();
            extract::extract_html(s, &resp.text, &resp.url, &|| clock.so_far())?.record
        }
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
        let clock = crate::check::ParseClock::start();
        match extract::stream_fallback_reason(s, &resp.text, &resp.url, &|| clock.so_far()) {
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

/// `probe --site URL`: the whole-site walk a `kind = "site"` source does,
/// with its default bounds, nothing stored: each page read and every
/// mention with its context and the pages it was seen on.
pub(super) async fn probe_site(
    config: &Config,
    url: &str,
    allow_private: bool,
    polite: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let url =
        url::Url::parse(url).map_err(|e| AppError::Usage(format!("invalid URL {url:?}: {e}")))?;
    let h = &config.settings.http;
    let mut fetcher = Fetcher::new(h.fetch_options(allow_private || h.allow_private_addresses))?;
    let (polite_turns, robots) = politeness(config);
    let robots = if polite {
        fetcher = fetcher.with_politeness(polite_turns);
        robots
    } else {
        None
    };
    let reference = crate::classify::Reference::embedded()
        .map_err(|e| AppError::Usage(crate::text::chain(&e)))?;
    let scanner = std::sync::Arc::new(crate::site::Scanner::new(std::sync::Arc::new(reference)));
    let crawler = crate::site::crawl::Crawler {
        fetcher: &fetcher,
        robots: robots.as_deref(),
        store: None,
        scanner,
    };
    let spec = crate::model::SiteSpec::default();
    let crawl = crawler
        .crawl(&url, &spec, &[])
        .await
        .map_err(|e| AppError::Usage(crate::text::chain(&e)))?;
    if let Some(home) = &crawl.home
        && crawl.scans.is_empty()
    {
        return Err(AppError::Blocked(home.message.clone()));
    }
    if json {
        for (page, scan) in &crawl.scans {
            writeln!(
                out,
                "{}",
                serde_json::json!({"page": page, "javascript_only": scan.javascript_only, "mentions": scan.mentions})
            )?;
        }
        return Ok(0);
    }
    writeln!(out, "{} pages read:", crawl.scans.len())?;
    for (page, scan) in &crawl.scans {
        let note = if scan.javascript_only {
            " (JavaScript only: nothing to read without running it)".to_string()
        } else {
            format!(" ({} mentions)", scan.mentions.len())
        };
        writeln!(out, "  {}{note}", for_display(page))?;
    }
    for p in &crawl.problems {
        writeln!(out, "problem: {}", for_display(p))?;
    }
    let mut by_key: std::collections::BTreeMap<&str, Vec<(&str, &crate::site::Mention)>> =
        Default::default();
    for (page, scan) in &crawl.scans {
        for m in &scan.mentions {
            by_key.entry(m.key.as_str()).or_default().push((page, m));
        }
    }
    writeln!(out, "{} mentions:", by_key.len())?;
    for (key, seen) in by_key {
        let best = seen.iter().map(|(_, m)| *m).max_by_key(|m| m.weight);
        let Some(best) = best else { continue };
        writeln!(
            out,
            "  [{}] {}: {}",
            for_display(key),
            for_display(&best.label()),
            best.context()
        )?;
        for (page, m) in seen {
            writeln!(
                out,
                "      {} ({}): \u{201c}{}\u{201d}",
                for_display(page),
                m.weight.as_str(),
                for_display(&m.snippet)
            )?;
        }
    }
    Ok(0)
}
