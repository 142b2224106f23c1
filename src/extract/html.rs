//! HTML extraction with CSS selectors (scraper / html5ever).

use scraper::{ElementRef, Node, Selector};
use url::Url;

use super::reading::Raw;
use super::{Column, ExtractError, Unmatched, build_item, clean_text, insert_items};
use crate::record::{FieldValue, Record};

/// One field or column: a compiled selector, and what to read of the match.
#[derive(Debug, Clone)]
pub struct HtmlField {
    /// The selector as written (for messages).
    pub source: String,
    /// The compiled selector.
    pub selector: Selector,
    /// Read this attribute instead of the text.
    pub attr: Option<String>,
    /// Every match as a list, instead of the first.
    pub all: bool,
}

impl HtmlField {
    /// Compiles a selector; the error is a message fit for `check`.
    pub fn new(selector: &str, attr: Option<String>, all: bool) -> Result<HtmlField, String> {
        let compiled = compile_selector(selector)?;
        Ok(HtmlField {
            source: selector.to_string(),
            selector: compiled,
            attr,
            all,
        })
    }
}

/// Compiles a CSS selector, turning scraper's terse errors into a message.
pub fn compile_selector(selector: &str) -> Result<Selector, String> {
    if selector.trim().is_empty() {
        return Err("empty CSS selector".to_string());
    }
    Selector::parse(selector).map_err(|e| {
        let detail = format!("{e:?}");
        format!(
            "CSS selector {selector:?} does not compile ({}); check brackets, quotes and combinators",
            detail
                .split('(')
                .next()
                .unwrap_or("syntax error")
                .trim_start_matches("SelectorErrorKind::")
        )
    })
}

/// Catalogue rows: a row selector and column selectors relative to each row.
#[derive(Debug, Clone)]
pub struct HtmlItems {
    /// Selects one element per item.
    pub row: HtmlField,
    /// Columns, each relative to the row.
    pub columns: Vec<(Column, HtmlField)>,
}

/// Everything needed to turn one HTML page into a record.
#[derive(Debug, Clone, Default)]
pub struct HtmlSpec {
    /// Named fields.
    pub fields: Vec<(String, HtmlField)>,
    /// Catalogue rows.
    pub items: Option<HtmlItems>,
    /// The link to the next page (pagination).
    pub next_page: Option<HtmlField>,
    /// Pages to follow at most (including the first).
    pub max_pages: u32,
    /// The extractor its pages go through ([`HtmlSpec::prepared`]).
    pub engine: Engine,
}

/// What one page yields: its part of the record and the next page's URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlPage {
    /// Fields and items found on this page.
    pub record: Record,
    /// The next page, when the spec paginates and the page links one.
    pub next: Option<Url>,
    /// Selectors that matched no element on this page.
    pub unmatched: Unmatched,
}

/// Which extractor a spec's pages go through, chosen once when the spec
/// is compiled ([`HtmlSpec::prepared`]).
#[derive(Debug, Clone, Default)]
pub enum Engine {
    /// The DOM path (scraper); the default of a spec never prepared.
    #[default]
    Dom,
    /// The DOM path, because this selector needs the tree.
    DomBecause(String),
    /// The streaming path ([`super::stream`]), with the DOM for the pages
    /// it cannot mirror.
    Stream(std::sync::Arc<super::stream::Plan>),
}

impl HtmlSpec {
    /// The spec with its extractor chosen: streaming when every selector
    /// is in the subset of [`super::simple`], else the DOM.
    pub fn prepared(mut self) -> HtmlSpec {
        self.engine = match super::stream::Plan::new(&self) {
            Ok(p) => Engine::Stream(std::sync::Arc::new(p)),
            Err(sel) => Engine::DomBecause(sel),
        };
        self
    }

    /// The extractor, as `probe` and the check's trace show it.
    pub fn engine_name(&self) -> String {
        match &self.engine {
            Engine::Dom => "dom".to_string(),
            Engine::DomBecause(sel) => format!("dom (selector `{sel}` needs the tree)"),
            Engine::Stream(_) => "stream".to_string(),
        }
    }
}

/// Extracts one page. `base` resolves relative links; `elapsed` is the
/// extraction's time so far, as the caller measures it (the bound of
/// [`super::limits::HtmlLimits::parse_time`] covers both paths). A
/// prepared spec goes through the streaming extractor, and a page it
/// cannot mirror through the DOM.
pub fn extract_html(
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    elapsed: super::limits::Elapsed<'_>,
) -> Result<HtmlPage, ExtractError> {
    let lim = &super::limits::HTML_LIMITS;
    if let Engine::Stream(plan) = &spec.engine {
        super::limits::prescan(text, lim)?;
        match super::stream::extract(plan, spec, text, base, lim, elapsed)? {
            super::stream::Outcome::Done(raw) => return assemble(spec, raw, base),
            super::stream::Outcome::Fallback(why) => {
                tracing::debug!(why, "page needs the DOM");
                let doc = super::limits::parse_scanned(text, lim, elapsed)?;
                return assemble(spec, read_dom(spec, &doc, base), base);
            }
        }
    }
    extract_html_dom(spec, text, base, elapsed)
}

/// Extracts one page through the DOM (scraper), whatever the spec's
/// engine.
pub fn extract_html_dom(
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    elapsed: super::limits::Elapsed<'_>,
) -> Result<HtmlPage, ExtractError> {
    let doc = super::limits::parse(text, &super::limits::HTML_LIMITS, elapsed)?;
    assemble(spec, read_dom(spec, &doc, base), base)
}

/// Extracts one page through the streaming path only: `Ok(None)` when
/// the page needs the DOM (or the spec is not prepared for streaming).
/// For the differential test and the benches.
pub fn extract_html_stream(
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    elapsed: super::limits::Elapsed<'_>,
) -> Result<Option<HtmlPage>, ExtractError> {
    let lim = &super::limits::HTML_LIMITS;
    let Engine::Stream(plan) = &spec.engine else {
        return Ok(None);
    };
    super::limits::prescan(text, lim)?;
    match super::stream::extract(plan, spec, text, base, lim, elapsed)? {
        super::stream::Outcome::Done(raw) => assemble(spec, raw, base).map(Some),
        super::stream::Outcome::Fallback(_) => Ok(None),
    }
}

/// Why the streaming path hands `text` to the DOM, if it does.
pub fn stream_fallback_reason(
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    elapsed: super::limits::Elapsed<'_>,
) -> Option<&'static str> {
    let Engine::Stream(plan) = &spec.engine else {
        return Some("spec not streamable");
    };
    match super::stream::extract(plan, spec, text, base, &super::limits::HTML_LIMITS, elapsed) {
        Ok(super::stream::Outcome::Fallback(why)) => Some(why),
        _ => None,
    }
}

fn read_dom(spec: &HtmlSpec, doc: &scraper::Html, base: &Url) -> Raw {
    let root = doc.root_element();
    let fields = spec
        .fields
        .iter()
        .map(|(_, f)| read_field(root, f, f.all, base))
        .collect();
    let rows = match &spec.items {
        Some(items) => root
            .select(&items.row.selector)
            .map(|row| {
                items
                    .columns
                    .iter()
                    .map(|(_, f)| read_field(row, f, false, base))
                    .collect()
            })
            .collect(),
        None => Vec::new(),
    };
    let next = match &spec.next_page {
        Some(f) => read_field(root, f, false, base),
        None => (None, false),
    };
    Raw { fields, rows, next }
}

fn assemble(spec: &HtmlSpec, raw: Raw, base: &Url) -> Result<HtmlPage, ExtractError> {
    let mut page = HtmlPage::default();
    let mut any_field = false;
    for ((name, field), (v, matched)) in spec.fields.iter().zip(raw.fields) {
        if let Some(v) = v {
            any_field = true;
            page.record.fields.insert(name.clone(), v);
        }
        if !matched {
            page.unmatched
                .fields
                .insert(name.clone(), field.source.clone());
        }
    }
    if !spec.fields.is_empty() && !any_field && spec.items.is_none() {
        return Err(ExtractError::NoFields {
            selectors: spec
                .fields
                .iter()
                .map(|(_, f)| format!("`{}`", f.source))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    if let Some(items) = &spec.items {
        let rows = raw.rows.len();
        let mut found = Vec::new();
        // Columns whose selector matched an element in some row.
        let mut matched_columns = vec![false; items.columns.len()];
        for row in raw.rows {
            let values = items
                .columns
                .iter()
                .zip(matched_columns.iter_mut())
                .zip(row)
                .filter_map(|(((col, _), seen), (v, matched))| {
                    *seen |= matched;
                    match v {
                        Some(FieldValue::Text(t)) => Some((col, t)),
                        _ => None,
                    }
                });
            if let Some(item) = build_item(values) {
                found.push(item);
            }
        }
        if rows == 0 || found.is_empty() {
            return Err(ExtractError::NoRows {
                selector: items.row.source.clone(),
            });
        }
        for ((col, f), seen) in items.columns.iter().zip(matched_columns) {
            if !seen {
                page.unmatched
                    .columns
                    .insert(col.name().to_string(), f.source.clone());
            } else if !found.iter().any(|it| super::has_column(it, col)) {
                page.unmatched
                    .empty_columns
                    .insert(col.name().to_string(), f.source.clone());
            }
        }
        insert_items(&mut page.record, found);
    }

    if let (Some(FieldValue::Text(href)), _) = raw.next
        && let Ok(u) = base.join(&href)
        && matches!(u.scheme(), "http" | "https")
    {
        page.next = Some(u);
    }
    Ok(page)
}

/// Reads `field` in `scope`: every match as a list when `all`, else the
/// first match with a non-empty value; and whether the selector matched
/// any element at all (an element with no text still matched). (`all` is
/// a parameter so that item columns, always single, need no per-row copy
/// of the field.)
fn read_field(
    scope: ElementRef<'_>,
    field: &HtmlField,
    all: bool,
    base: &Url,
) -> (Option<FieldValue>, bool) {
    let read = |el: ElementRef<'_>| -> Option<String> {
        let v = match &field.attr {
            Some(a) => {
                let raw = clean_text(el.value().attr(a)?);
                if matches!(a.as_str(), "href" | "src" | "action") && !raw.is_empty() {
                    base.join(&raw).map(|u| u.to_string()).unwrap_or(raw)
                } else {
                    raw
                }
            }
            None => element_text(el),
        };
        (!v.is_empty()).then_some(v)
    };
    // `:scope`-less selectors also match the scope element itself when it
    // fits; scraper's `select` only looks at descendants, so check it first.
    let mut matches: Vec<ElementRef<'_>> = Vec::new();
    if field.selector.matches(&scope) {
        matches.push(scope);
    }
    if all {
        matches.extend(scope.select(&field.selector));
        let matched = !matches.is_empty();
        let list: Vec<String> = matches.into_iter().filter_map(read).collect();
        (
            (!list.is_empty()).then_some(FieldValue::List(list)),
            matched,
        )
    } else {
        let mut matched = false;
        let v = matches
            .into_iter()
            .chain(scope.select(&field.selector))
            .find_map(|el| {
                matched = true;
                read(el)
            })
            .map(FieldValue::Text);
        (v, matched)
    }
}

/// The visible text of an element: script, style, template and noscript
/// content is skipped; block boundaries and `<br>` become spaces.
pub fn element_text(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    collect_text(*el, &mut out);
    clean_text(&out)
}

fn collect_text(node: ego_tree::NodeRef<'_, Node>, out: &mut String) {
    for child in node.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                let name = e.name();
                if matches!(name, "script" | "style" | "template" | "noscript") {
                    continue;
                }
                let block = super::reading::is_block(name);
                if block {
                    out.push(' ');
                }
                collect_text(child, out);
                if block {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}
