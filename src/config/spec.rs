//! [`SpecBuilder`]: an extraction spec from plain strings (`probe`'s
//! `--field`, `--rows`, `--col`), compiled the way a watchlist's source is:
//! the same selector compilation ([`super::watchlist::Interner`]), the same
//! JSON pointer check, the same column names.

use crate::extract::{
    Column, ExtractSpec, HtmlField, HtmlItems, HtmlSpec, JsonField, JsonItems, JsonSpec,
    check_pointer,
};

use super::watchlist::Interner;

/// Builds one [`ExtractSpec`]; each step's error is the message a
/// watchlist would show for the same selector or pointer.
pub(crate) struct SpecBuilder {
    spec: ExtractSpec,
    interner: Interner,
}

impl std::fmt::Debug for SpecBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecBuilder").finish_non_exhaustive()
    }
}

/// A column by its watchlist name (`name`, `manufacturer`, `part_number`,
/// `price`, `link`), any other name being an extra column.
fn column_named(name: &str) -> Column {
    match name {
        "name" => Column::Name,
        "manufacturer" => Column::Manufacturer,
        "part_number" => Column::PartNumber,
        "price" => Column::Price,
        "link" => Column::Link,
        other => Column::Extra(other.to_string()),
    }
}

impl SpecBuilder {
    /// An HTML spec (one page, as a watchlist source without `next_page`).
    pub(crate) fn html() -> SpecBuilder {
        SpecBuilder {
            spec: ExtractSpec::Html(HtmlSpec {
                max_pages: 1,
                ..HtmlSpec::default()
            }),
            interner: Interner::default(),
        }
    }

    /// A JSON spec (fields and columns are RFC 6901 pointers).
    pub(crate) fn json() -> SpecBuilder {
        SpecBuilder {
            spec: ExtractSpec::Json(JsonSpec::default()),
            interner: Interner::default(),
        }
    }

    /// Adds a field: a CSS selector (HTML, reading `attr` when given) or
    /// a JSON pointer (`attr` must then be `None`).
    pub(crate) fn field(
        &mut self,
        name: &str,
        target: &str,
        attr: Option<&str>,
    ) -> Result<(), String> {
        match &mut self.spec {
            ExtractSpec::Html(s) => {
                let f = html(&mut self.interner, target, attr, false)?;
                s.fields.push((name.to_string(), f));
            }
            ExtractSpec::Json(s) => s.fields.push((name.to_string(), json(target, attr)?)),
        }
        Ok(())
    }

    /// Sets the items: a row selector (reading `row_attr` when given) or
    /// pointer, and its columns, each (column name, selector or pointer
    /// relative to the row, attribute). An HTML spec without columns names
    /// each item by its row's text.
    pub(crate) fn items(
        &mut self,
        row: &str,
        row_attr: Option<&str>,
        columns: &[(String, String, Option<String>)],
    ) -> Result<(), String> {
        match &mut self.spec {
            ExtractSpec::Html(s) => {
                let mut cols = Vec::new();
                for (name, sel, attr) in columns {
                    let f = html(&mut self.interner, sel, attr.as_deref(), false)?;
                    cols.push((column_named(name), f));
                }
                if cols.is_empty() {
                    let f = html(&mut self.interner, ":scope", None, false)
                        .or_else(|_| html(&mut self.interner, "*", None, false))?;
                    cols.push((Column::Name, f));
                }
                let row = html(&mut self.interner, row, row_attr, true)?;
                s.items = Some(HtmlItems { row, columns: cols });
            }
            ExtractSpec::Json(s) => {
                json(row, row_attr)?;
                let mut cols = Vec::new();
                for (name, pointer, attr) in columns {
                    cols.push((column_named(name), json(pointer, attr.as_deref())?));
                }
                s.items = Some(JsonItems {
                    row: row.to_string(),
                    columns: cols,
                });
            }
        }
        Ok(())
    }

    /// The spec.
    pub(crate) fn build(self) -> ExtractSpec {
        self.spec.prepared()
    }
}

fn html(
    interner: &mut Interner,
    sel: &str,
    attr: Option<&str>,
    all: bool,
) -> Result<HtmlField, String> {
    interner.field(sel, attr.map(str::to_string), all)
}

fn json(pointer: &str, attr: Option<&str>) -> Result<JsonField, String> {
    if let Some(a) = attr {
        return Err(format!(
            "JSON pointer {pointer:?}: `@{a}` reads an HTML attribute; JSON fields take a pointer only"
        ));
    }
    check_pointer(pointer)?;
    Ok(JsonField {
        pointer: pointer.to_string(),
        all: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_fields_items_and_the_default_name_column() {
        let mut b = SpecBuilder::html();
        b.field("site", "a.site", Some("href")).expect("field");
        b.items("li.item", None, &[]).expect("items");
        let ExtractSpec::Html(s) = b.build() else {
            panic!("an HTML spec");
        };
        assert_eq!(s.max_pages, 1);
        assert_eq!(s.fields[0].0, "site");
        assert_eq!(s.fields[0].1.attr.as_deref(), Some("href"));
        let items = s.items.expect("items");
        assert!(items.row.all);
        assert_eq!(items.columns.len(), 1);
        assert_eq!(items.columns[0].0, Column::Name);
    }

    #[test]
    fn columns_by_their_watchlist_names() {
        let mut b = SpecBuilder::json();
        let cols = [
            ("part_number".to_string(), "/pn".to_string(), None),
            ("colour".to_string(), "/c".to_string(), None),
        ];
        b.items("/items", None, &cols).expect("items");
        let ExtractSpec::Json(s) = b.build() else {
            panic!("a JSON spec");
        };
        let items = s.items.expect("items");
        assert_eq!(items.row, "/items");
        assert_eq!(items.columns[0].0, Column::PartNumber);
        assert_eq!(items.columns[1].0, Column::Extra("colour".into()));
    }

    #[test]
    fn a_bad_selector_or_pointer_is_the_watchlist_message() {
        let mut b = SpecBuilder::html();
        let err = b.field("x", "p[", None).expect_err("bad selector");
        assert_eq!(
            Some(err),
            crate::extract::compile_selector("p[").err(),
            "the same message as a watchlist's selector"
        );
        let mut b = SpecBuilder::json();
        let err = b.field("x", "name", None).expect_err("bad pointer");
        assert!(err.contains("must start with '/'"), "{err}");
    }
}
