//! Semantic diff: `Record × Record → Vec<Change>`.
//!
//! **Architecture Invariant:** pure. Texts are compared by their folded
//! form ([`crate::extract::fold`]), list fields as sets, items by key, so
//! case, whitespace and row order never produce a change.

use std::collections::{BTreeMap, BTreeSet};

use crate::extract::fold;
use crate::record::{Change, FieldValue, Item, Record};

/// Every change from `old` to `new`, fields first (by name), then items
/// (by key).
pub fn diff(old: &Record, new: &Record) -> Vec<Change> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = old.fields.keys().chain(new.fields.keys()).collect();
    for name in names {
        let (o, n) = (old.fields.get(name), new.fields.get(name));
        // Equal as stored implies equal after folding: skip the fold.
        if o != n {
            diff_field(name, o, n, &mut out);
        }
    }
    for (key, o) in &old.items {
        match new.items.get(key) {
            None => out.push(Change::ItemRemoved {
                item: key.clone(),
                old: o.clone(),
            }),
            // Most rows of a changed catalogue are identical: compare them
            // as stored before building and folding attribute maps.
            Some(n) if n == o => {}
            Some(n) => {
                let attributes = changed_attributes(o, n);
                if !attributes.is_empty() {
                    out.push(Change::ItemChanged {
                        item: key.clone(),
                        old: o.clone(),
                        new: n.clone(),
                        attributes,
                    });
                }
            }
        }
    }
    for (key, n) in &new.items {
        if !old.items.contains_key(key) {
            out.push(Change::ItemAdded {
                item: key.clone(),
                new: n.clone(),
            });
        }
    }
    out
}

/// Whether two records are the same for diffing purposes.
pub fn same(old: &Record, new: &Record) -> bool {
    old == new || diff(old, new).is_empty()
}

fn diff_field(
    name: &str,
    old: Option<&FieldValue>,
    new: Option<&FieldValue>,
    out: &mut Vec<Change>,
) {
    use FieldValue::*;
    match (old, new) {
        (Some(List(o)), Some(List(n))) => {
            let of: BTreeMap<String, &String> = o.iter().map(|v| (fold(v), v)).collect();
            let nf: BTreeMap<String, &String> = n.iter().map(|v| (fold(v), v)).collect();
            for (k, v) in &of {
                if !nf.contains_key(k) {
                    out.push(Change::ValueRemoved {
                        field: name.to_string(),
                        old: (*v).clone(),
                    });
                }
            }
            for (k, v) in &nf {
                if !of.contains_key(k) {
                    out.push(Change::ValueAdded {
                        field: name.to_string(),
                        new: (*v).clone(),
                    });
                }
            }
        }
        (o, n) => {
            let od = o.map(FieldValue::display);
            let nd = n.map(FieldValue::display);
            if od.as_deref().map(fold) != nd.as_deref().map(fold) {
                out.push(Change::FieldChanged {
                    field: name.to_string(),
                    old: od,
                    new: nd,
                });
            }
        }
    }
}

fn changed_attributes(o: &Item, n: &Item) -> Vec<String> {
    let (oa, na) = (o.attributes(), n.attributes());
    let keys: BTreeSet<&String> = oa.keys().chain(na.keys()).collect();
    keys.into_iter()
        .filter(|k| oa.get(*k).map(|v| fold(v)) != na.get(*k).map(|v| fold(v)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pn: &str, price: &str) -> Item {
        Item {
            key: pn.to_string(),
            part_number: Some(pn.to_string()),
            price: Some(price.to_string()),
            ..Item::default()
        }
    }

    fn rec(fields: &[(&str, FieldValue)], items: &[Item]) -> Record {
        Record {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            items: items.iter().map(|i| (i.key.clone(), i.clone())).collect(),
        }
    }

    #[test]
    fn case_and_order_are_not_changes() {
        let a = rec(
            &[
                ("name", FieldValue::Text("Atlas Métaux".into())),
                ("officers", FieldValue::List(vec!["A".into(), "B".into()])),
            ],
            &[item("X1", "1"), item("X2", "2")],
        );
        let b = rec(
            &[
                ("name", FieldValue::Text("ATLAS MÉTAUX".into())),
                ("officers", FieldValue::List(vec!["b".into(), "a".into()])),
            ],
            &[item("X2", "2"), item("X1", "1")],
        );
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn every_change_kind() {
        let a = rec(
            &[
                ("activity", FieldValue::Text("Scrap".into())),
                ("officers", FieldValue::List(vec!["A".into(), "B".into()])),
            ],
            &[item("X1", "1"), item("X2", "2")],
        );
        let b = rec(
            &[
                ("activity", FieldValue::Text("Electronics".into())),
                ("officers", FieldValue::List(vec!["A".into(), "C".into()])),
            ],
            &[item("X1", "9"), item("X3", "3")],
        );
        let d = diff(&a, &b);
        let kinds: Vec<String> = d
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "field_changed",
                "value_removed",
                "value_added",
                "item_changed",
                "item_removed",
                "item_added"
            ]
        );
        assert!(
            matches!(&d[3], Change::ItemChanged { attributes, .. } if attributes == &vec!["price".to_string()])
        );
    }
}
