//! Body → [`Record`]: HTML through CSS selectors, JSON through pointers.
//!
//! **Architecture Invariant:** no network, no store, no clock. Extraction is
//! a pure function of (spec, body, base URL), so the same body always yields
//! the same record, and `probe` shows exactly what a check would store.
//!
//! Noise control lives here: text is whitespace-collapsed and NFC-normalised,
//! script/style text is never read, items are keyed (not ordered), and a page
//! on which the selectors match nothing is an error, never an empty record.

mod html;
mod json;
pub mod limits;
mod normalize;
mod reading;
mod simple;
mod stream;
pub(crate) mod tokens;
#[doc(hidden)]
pub use tokens::{token_count, token_trace, token_trace_html5ever};

use std::collections::BTreeMap;

pub use html::{
    Engine, HtmlField, HtmlItems, HtmlPage, HtmlSpec, compile_selector, element_text, extract_html,
    extract_html_dom, extract_html_stream, stream_fallback_reason,
};
pub use json::{JsonField, JsonItems, JsonSpec, check_pointer, extract_json, extract_json_page};
pub use normalize::{clean_text, fold, item_key, normalise_part_number};

use crate::record::{Item, Record};

/// One catalogue column an item spec may fill.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    /// `name`.
    Name,
    /// `manufacturer`.
    Manufacturer,
    /// `part_number`.
    PartNumber,
    /// `price`.
    Price,
    /// `link`.
    Link,
    /// A free extra column (`[...items.columns]`).
    Extra(String),
}

impl Column {
    /// The column's name as written in a watchlist.
    pub fn name(&self) -> &str {
        match self {
            Column::Name => "name",
            Column::Manufacturer => "manufacturer",
            Column::PartNumber => "part_number",
            Column::Price => "price",
            Column::Link => "link",
            Column::Extra(n) => n,
        }
    }
}

/// How one source's bodies become records.
#[derive(Debug, Clone)]
pub enum ExtractSpec {
    /// HTML with CSS selectors.
    Html(HtmlSpec),
    /// JSON with RFC 6901 pointers.
    Json(JsonSpec),
}

impl ExtractSpec {
    /// The spec with its HTML extractor chosen ([`HtmlSpec::prepared`]);
    /// called once per distinct spec when a configuration loads.
    pub fn prepared(self) -> ExtractSpec {
        match self {
            ExtractSpec::Html(h) => ExtractSpec::Html(h.prepared()),
            json => json,
        }
    }
}

/// Why a body did not yield a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The item row selector matched no element.
    #[error(
        "the row selector `{selector}` matched nothing on this page; the page may be a block page or the site's markup changed (try `pivotwatch probe URL --rows ...`)"
    )]
    NoRows {
        /// The selector as written.
        selector: String,
    },
    /// None of the field selectors matched.
    #[error(
        "none of the field selectors ({selectors}) matched on this page; the page may be a block page or the site's markup changed (try `pivotwatch probe URL --field ...`)"
    )]
    NoFields {
        /// The selectors as written, comma-separated.
        selectors: String,
    },
    /// The body is not JSON.
    #[error("the body is not valid JSON ({0}); check the source's `format` and URL")]
    InvalidJson(String),
    /// The row pointer does not point at an array.
    #[error("the row pointer `{pointer}` does not point at a JSON array")]
    NotAnArray {
        /// The pointer as written.
        pointer: String,
    },
    /// The page exceeds a bound of [`limits::HTML_LIMITS`] (nesting depth,
    /// attributes on one element, elements, parse time).
    #[error(
        "the page is too complex to parse safely ({detail}); the {limit} limit is {max}, and real catalogue and registry pages stay far below it: the page is malformed or hostile, so nothing was stored"
    )]
    TooComplex {
        /// Which limit: `depth`, `attributes per element`, `elements`,
        /// `parse time`.
        limit: &'static str,
        /// Its value.
        max: String,
        /// Where and what was found.
        detail: String,
    },
    /// Selectors that had values in the previous snapshot matched nothing,
    /// while the page's other selectors still matched: the site's markup
    /// changed under the watchlist, which is not a change of the record.
    #[error(
        "degraded: {unmatched}, though the previous snapshot had values there and the page's other selectors still match; the site's markup probably changed: fix the selector (try `pivotwatch probe URL`); nothing was recorded as removed"
    )]
    Degraded {
        /// What stopped matching, e.g. ``field `officers` (`td.off`) matched
        /// nothing``.
        unmatched: String,
    },
}

/// Selectors (or JSON pointers) of a spec that matched no element on a
/// page, by field name and by column name, each with the selector as
/// written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unmatched {
    /// Fields whose selector matched no element.
    pub fields: BTreeMap<String, String>,
    /// Item columns whose selector matched no element in any row.
    pub columns: BTreeMap<String, String>,
    /// Item columns whose selector matched, but only elements without a
    /// value, in every row.
    pub empty_columns: BTreeMap<String, String>,
}

/// Whether `item` has a value in `col`.
pub(crate) fn has_column(item: &Item, col: &Column) -> bool {
    match col {
        Column::Name => item.name.is_some(),
        Column::Manufacturer => item.manufacturer.is_some(),
        Column::PartNumber => item.part_number.is_some(),
        Column::Price => item.price.is_some(),
        Column::Link => item.link.is_some(),
        Column::Extra(n) => item.extra.contains_key(n),
    }
}

impl Unmatched {
    /// Keeps only what `other` (another page of the same walk) did not
    /// match either: a selector is unmatched when no page matched it.
    pub fn intersect(&mut self, other: &Unmatched) {
        self.fields.retain(|k, _| other.fields.contains_key(k));
        // A column is valueless on the walk when it is on every page;
        // "matched nothing" only when no page matched it.
        let valueless =
            |k: &String| other.columns.contains_key(k) || other.empty_columns.contains_key(k);
        let mut moved = Vec::new();
        self.columns.retain(|k, sel| {
            if other.columns.contains_key(k) {
                true
            } else {
                if valueless(k) {
                    moved.push((k.clone(), sel.clone()));
                }
                false
            }
        });
        self.empty_columns.retain(|k, _| valueless(k));
        self.empty_columns.extend(moved);
    }

    /// The rule of a broken source: a field that had a value in
    /// `previous` and whose selector now matches no element, or an item
    /// column that had a value in one of its items and now has a value in
    /// no row (its selector matches nothing, or only empty cells), on a
    /// page that extracted (so its other selectors matched), makes the
    /// check fail as [`ExtractError::Degraded`]. A field selector that
    /// still matches an element whose text is now empty, and a column
    /// that still has a value in some row, are changes, not this.
    pub fn degraded(&self, previous: &Record) -> Option<ExtractError> {
        let mut what = Vec::new();
        for (name, sel) in &self.fields {
            if previous.fields.contains_key(name) {
                what.push(format!("field `{name}` (`{sel}`) matched nothing"));
            }
        }
        let had = |col: &str| {
            previous
                .items
                .values()
                .any(|it| it.attributes().contains_key(col))
        };
        for (col, sel) in &self.columns {
            if had(col) {
                what.push(format!(
                    "column `{col}` (`{sel}`) matched nothing in any row"
                ));
            }
        }
        for (col, sel) in &self.empty_columns {
            if had(col) {
                what.push(format!("column `{col}` (`{sel}`) is empty in every row"));
            }
        }
        (!what.is_empty()).then(|| ExtractError::Degraded {
            unmatched: what.join(", "),
        })
    }
}

/// Builds an [`Item`] from column values, returning `None` for rows that
/// carry neither a part number nor a name (header and spacer rows). A
/// column given twice keeps its last value; an empty value is no value.
pub fn build_item<'c>(values: impl IntoIterator<Item = (&'c Column, String)>) -> Option<Item> {
    let mut item = Item::default();
    for (col, v) in values {
        let v = (!v.is_empty()).then_some(v);
        match col {
            Column::Name => item.name = v,
            Column::Manufacturer => item.manufacturer = v,
            Column::PartNumber => item.part_number = v,
            Column::Price => item.price = v,
            Column::Link => item.link = v,
            Column::Extra(n) => match v {
                Some(v) => {
                    item.extra.insert(n.clone(), v);
                }
                None => {
                    item.extra.remove(n);
                }
            },
        }
    }
    item.key = item_key(item.part_number.as_deref(), item.name.as_deref())?;
    Some(item)
}

/// Keys a stored record's items again by today's [`item_key`] (a record
/// written by a pivotwatch whose keys were computed otherwise), with the
/// duplicate suffixes of [`insert_items`]. Returns whether any key changed.
/// An item whose fields give no key keeps the one it has.
pub fn rekey(record: &mut Record) -> bool {
    let before: Vec<String> = record.items.keys().cloned().collect();
    let items: Vec<Item> = std::mem::take(&mut record.items)
        .into_values()
        .map(|mut it| {
            if let Some(k) = item_key(it.part_number.as_deref(), it.name.as_deref()) {
                it.key = k;
            }
            it
        })
        .collect();
    insert_items(record, items);
    !record.items.keys().eq(before.iter())
}

/// Puts items into a record by key. Rows that share a key are told apart
/// by a `#2`, `#3` … suffix assigned in content order, so reordering rows
/// never changes any key.
pub fn insert_items(record: &mut Record, items: Vec<Item>) {
    // Keys never contain '#' except as the duplicate suffix added here.
    // Every key is assigned again below, so the base key is moved out of
    // the item rather than copied. A stable sort by base key keeps the
    // rows of one key in content order.
    let mut keyed: Vec<(String, Item)> = items
        .into_iter()
        .map(|mut it| {
            let mut base = std::mem::take(&mut it.key);
            if let Some(i) = base.find('#') {
                base.truncate(i);
            }
            (base, it)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    // Items already in the record (earlier pages) join their group; on the
    // first page there are none to look for.
    let merging = !record.items.is_empty();
    let mut rest = keyed.into_iter().peekable();
    while let Some((key, first)) = rest.next() {
        let mut group = vec![];
        while let Some((_, it)) = rest.next_if(|(k, _)| *k == key) {
            group.push(it);
        }
        if merging {
            if let Some(existing) = record.items.remove(&key) {
                group.push(existing);
            }
            let mut n = 2;
            while let Some(existing) = record.items.remove(&format!("{key}#{n}")) {
                group.push(existing);
                n += 1;
            }
        }
        if group.is_empty() {
            let mut it = first;
            it.key = key.clone();
            record.items.insert(key, it);
            continue;
        }
        group.insert(0, first);
        // Cached: one serialisation per item, not one per comparison
        // (same stable order: the JSON text of the item's attributes).
        group.sort_by_cached_key(Item::attributes_json);
        for (i, mut it) in group.into_iter().enumerate() {
            let k = if i == 0 {
                key.clone()
            } else {
                format!("{key}#{}", i + 1)
            };
            it.key = k.clone();
            record.items.insert(k, it);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition [`insert_items`] must agree with: rows grouped by
    /// base key in a map, each group in content order.
    fn reference_insert(record: &mut Record, items: Vec<Item>) {
        let mut groups: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for mut it in items {
            let mut base = std::mem::take(&mut it.key);
            if let Some(i) = base.find('#') {
                base.truncate(i);
            }
            groups.entry(base).or_default().push(it);
        }
        for (key, mut group) in groups {
            if let Some(existing) = record.items.remove(&key) {
                group.push(existing);
            }
            let mut n = 2;
            while let Some(existing) = record.items.remove(&format!("{key}#{n}")) {
                group.push(existing);
                n += 1;
            }
            group.sort_by_cached_key(Item::attributes_json);
            for (i, mut it) in group.into_iter().enumerate() {
                it.key = if i == 0 {
                    key.clone()
                } else {
                    format!("{key}#{}", i + 1)
                };
                record.items.insert(it.key.clone(), it);
            }
        }
    }

    fn item(key: &str, price: &str) -> Item {
        Item {
            key: key.into(),
            part_number: Some(key.into()),
            price: Some(price.into()),
            ..Item::default()
        }
    }

    #[test]
    fn duplicate_keys_are_numbered_by_content_on_every_page_order() {
        let rows: Vec<Item> = [
            ("TMS320", "3"),
            ("ADSP21", "1"),
            ("TMS320", "1"),
            ("XC7A", "9"),
            ("TMS320", "2"),
            ("ADSP21", "1"),
            ("LPC1768#2", "5"),
            ("LPC1768", "4"),
        ]
        .into_iter()
        .map(|(k, p)| item(k, p))
        .collect();
        let mut seen = Vec::new();
        for shift in 0..rows.len() {
            let mut order = rows.clone();
            order.rotate_left(shift);
            order.swap(0, shift / 2);
            let (mut got, mut want) = (Record::default(), Record::default());
            insert_items(&mut got, order.clone());
            reference_insert(&mut want, order.clone());
            assert_eq!(got, want, "order {shift}");
            // A second page merges into the first.
            let next: Vec<Item> = [("TMS320", "0"), ("NEW1", "1"), ("LPC1768", "4")]
                .into_iter()
                .map(|(k, p)| item(k, p))
                .collect();
            insert_items(&mut got, next.clone());
            reference_insert(&mut want, next);
            assert_eq!(got, want, "order {shift}, second page");
            seen.push(got);
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "row order changed a key"
        );
        let keys: Vec<&str> = seen[0].items.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ADSP21",
                "ADSP21#2",
                "LPC1768",
                "LPC1768#2",
                "LPC1768#3",
                "NEW1",
                "TMS320",
                "TMS320#2",
                "TMS320#3",
                "TMS320#4",
                "XC7A"
            ]
        );
        assert_eq!(seen[0].items["TMS320"].price.as_deref(), Some("0"));
    }

    #[test]
    fn a_column_given_twice_keeps_its_last_value() {
        let extra = Column::Extra("stock".into());
        let it = build_item([
            (&Column::PartNumber, "A1".to_string()),
            (&Column::Name, "first".to_string()),
            (&Column::Name, String::new()),
            (&extra, "5".to_string()),
            (&extra, String::new()),
        ])
        .expect("a part number");
        assert_eq!(it.name, None);
        assert!(it.extra.is_empty());
        assert_eq!(build_item([(&Column::Price, "1".to_string())]), None);
    }
}
