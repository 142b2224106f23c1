//! JSON extraction with RFC 6901 pointers (registry APIs).

use serde_json::Value;

use super::{Column, ExtractError, Unmatched, build_item, clean_text, insert_items};
use crate::record::{FieldValue, Record};

/// One field or column: a JSON pointer, and whether to keep every element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonField {
    /// The pointer (`/data/attributes/entity/legalName/name`).
    pub pointer: String,
    /// The value is an array: keep every element as a list.
    pub all: bool,
}

/// Validates a JSON pointer's syntax.
pub fn check_pointer(p: &str) -> Result<(), String> {
    if !(p.is_empty() || p.starts_with('/')) {
        return Err(format!(
            "JSON pointer {p:?} must start with '/' (e.g. \"/data/name\"), or be \"\" for the whole value"
        ));
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "JSON pointer {p:?} has a '~' not followed by 0 or 1; write ~0 for '~' and ~1 for '/'"
            ));
        }
    }
    Ok(())
}

/// Item arrays: a pointer to the array and column pointers relative to
/// each element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonItems {
    /// Points at an array of items.
    pub row: String,
    /// Columns, relative to each element.
    pub columns: Vec<(Column, JsonField)>,
}

/// Everything needed to turn one JSON document into a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonSpec {
    /// Named fields.
    pub fields: Vec<(String, JsonField)>,
    /// Item arrays.
    pub items: Option<JsonItems>,
}

/// Extracts a record from a JSON body.
pub fn extract_json(spec: &JsonSpec, text: &str) -> Result<Record, ExtractError> {
    extract_json_page(spec, text).map(|(r, _)| r)
}

/// Extracts a record from a JSON body, with the pointers that resolved to
/// nothing (a pointer to `null` or `""` resolved).
pub fn extract_json_page(spec: &JsonSpec, text: &str) -> Result<(Record, Unmatched), ExtractError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ExtractError::InvalidJson(e.to_string()))?;
    let mut record = Record::default();
    let mut unmatched = Unmatched::default();
    for (name, f) in &spec.fields {
        if let Some(v) = read(&doc, f) {
            record.fields.insert(name.clone(), v);
        }
        if doc.pointer(&f.pointer).is_none() {
            unmatched.fields.insert(name.clone(), f.pointer.clone());
        }
    }
    if !spec.fields.is_empty() && record.fields.is_empty() && spec.items.is_none() {
        return Err(ExtractError::NoFields {
            selectors: spec
                .fields
                .iter()
                .map(|(_, f)| format!("`{}`", f.pointer))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if let Some(items) = &spec.items {
        let arr = match doc.pointer(&items.row) {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(ExtractError::NotAnArray {
                    pointer: items.row.clone(),
                });
            }
            None => {
                return Err(ExtractError::NoRows {
                    selector: items.row.clone(),
                });
            }
        };
        let mut found = Vec::new();
        let mut matched_columns = vec![false; items.columns.len()];
        for el in arr {
            let mut values = Vec::new();
            for ((col, f), seen) in items.columns.iter().zip(matched_columns.iter_mut()) {
                *seen |= el.pointer(&f.pointer).is_some();
                if let Some(FieldValue::Text(t)) = read(
                    el,
                    &JsonField {
                        all: false,
                        ..f.clone()
                    },
                ) {
                    values.push((col, t));
                }
            }
            if let Some(it) = build_item(values) {
                found.push(it);
            }
        }
        if found.is_empty() {
            return Err(ExtractError::NoRows {
                selector: items.row.clone(),
            });
        }
        for ((col, f), seen) in items.columns.iter().zip(matched_columns) {
            if !seen {
                unmatched
                    .columns
                    .insert(col.name().to_string(), f.pointer.clone());
            } else if !found.iter().any(|it| super::has_column(it, col)) {
                unmatched
                    .empty_columns
                    .insert(col.name().to_string(), f.pointer.clone());
            }
        }
        insert_items(&mut record, found);
    }
    Ok((record, unmatched))
}

fn read(doc: &Value, f: &JsonField) -> Option<FieldValue> {
    let v = doc.pointer(&f.pointer)?;
    if f.all {
        let list: Vec<String> = match v {
            Value::Array(a) => a.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        (!list.is_empty()).then_some(FieldValue::List(list))
    } else {
        scalar(v).map(FieldValue::Text)
    }
}

fn scalar(v: &Value) -> Option<String> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => clean_text(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_checked() {
        assert!(check_pointer("/data/name").is_ok());
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("data/name").is_err());
        assert!(check_pointer("/a~2b").is_err());
    }

    #[test]
    fn fields_and_items() {
        let spec = JsonSpec {
            fields: vec![
                (
                    "name".into(),
                    JsonField {
                        pointer: "/name".into(),
                        all: false,
                    },
                ),
                (
                    "officers".into(),
                    JsonField {
                        pointer: "/officers".into(),
                        all: true,
                    },
                ),
            ],
            items: Some(JsonItems {
                row: "/items".into(),
                columns: vec![(
                    Column::PartNumber,
                    JsonField {
                        pointer: "/mpn".into(),
                        all: false,
                    },
                )],
            }),
        };
        let r = extract_json(
            &spec,
            r#"{"name":" ACME  Ltd ","officers":["A","B"],"items":[{"mpn":"lm-317"},{"mpn":null}]}"#,
        )
        .unwrap();
        assert_eq!(r.fields["name"], FieldValue::Text("ACME Ltd".into()));
        assert_eq!(
            r.fields["officers"],
            FieldValue::List(vec!["A".into(), "B".into()])
        );
        assert_eq!(r.items.keys().collect::<Vec<_>>(), vec!["LM317"]);
        assert!(matches!(
            extract_json(&spec, "<html>"),
            Err(ExtractError::InvalidJson(_))
        ));
    }
}
