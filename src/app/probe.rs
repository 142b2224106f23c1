//! `probe URL`: an extractor tried on a live page.

use std::io::Write;

use super::{AppError, politeness};
use crate::config::Config;
use crate::extract::{
    self, Column, ExtractSpec, HtmlField, HtmlItems, HtmlSpec, JsonField, JsonItems, JsonSpec,
};
use crate::fetch::{Conditional, FetchOptions, Fetcher};
use crate::text::for_display;

fn split_kv(s: &str) -> Result<(String, String), AppError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| AppError::Usage(format!("{s:?}: write NAME=SELECTOR")))
}

fn html_field(sel: &str, all: bool) -> Result<HtmlField, AppError> {
    // `a.site@href` reads the href attribute.
    let (sel, attr) = match sel.rsplit_once('@') {
        Some((s, a))
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            (s, Some(a.to_string()))
        }
        _ => (sel, None),
    };
    HtmlField::new(sel, attr, all).map_err(AppError::Usage)
}

fn column(name: &str) -> Column {
    match name {
        "name" => Column::Name,
        "manufacturer" => Column::Manufacturer,
        "part_number" => Column::PartNumber,
        "price" => Column::Price,
        "link" => Column::Link,
        other => Column::Extra(other.to_string()),
    }
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
    let spec = if json_format {
        let mut s = JsonSpec::default();
        for f in fields {
            let (k, v) = split_kv(f)?;
            extract::check_pointer(&v).map_err(AppError::Usage)?;
            s.fields.push((
                k,
                JsonField {
                    pointer: v,
                    all: false,
                },
            ));
        }
        if let Some(r) = rows {
            extract::check_pointer(r).map_err(AppError::Usage)?;
            let mut columns = Vec::new();
            for c in cols {
                let (k, v) = split_kv(c)?;
                columns.push((
                    column(&k),
                    JsonField {
                        pointer: v,
                        all: false,
                    },
                ));
            }
            s.items = Some(JsonItems {
                row: r.to_string(),
                columns,
            });
        }
        ExtractSpec::Json(s)
    } else {
        let mut s = HtmlSpec {
            max_pages: 1,
            ..HtmlSpec::default()
        };
        for f in fields {
            let (k, v) = split_kv(f)?;
            s.fields.push((k, html_field(&v, false)?));
        }
        if fields.is_empty() && rows.is_none() {
            s.fields.push(("title".into(), html_field("title", false)?));
        }
        if let Some(r) = rows {
            let mut columns = Vec::new();
            for c in cols {
                let (k, v) = split_kv(c)?;
                columns.push((column(&k), html_field(&v, false)?));
            }
            if columns.is_empty() {
                columns.push((
                    Column::Name,
                    html_field(":scope", false).or_else(|_| html_field("*", false))?,
                ));
            }
            s.items = Some(HtmlItems {
                row: html_field(r, true)?,
                columns,
            });
        }
        ExtractSpec::Html(s)
    };
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
