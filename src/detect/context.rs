//! Context weights of whole-site mentions (`kind = "site"`): how much a
//! mention says about what a firm sells, read from the item columns the
//! site scan writes, and applied to the findings of a site source's
//! check inside [`crate::detect::judge`], so `check`, `explain` and the
//! mail give one verdict.
//!
//! **Boundary:** pure, like the rest of `detect`.

use serde::{Deserialize, Serialize};

use crate::record::{Finding, Item, Record, Severity};

/// An item's extra column: its strongest context.
pub const CONTEXT_COLUMN: &str = "context";
/// An item's extra column: pages it was seen on.
pub const SEEN_ON_COLUMN: &str = "seen on";
/// An item's extra column: the text around it.
pub const SNIPPET_COLUMN: &str = "snippet";

/// How much a mention says about what the firm sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weight {
    /// A news post, a menu, a footer, a logo strip: not an offer.
    Weak,
    /// Named in the page's text, with no sign of an offer.
    Medium,
    /// A product page: JSON-LD `Product`, a price, a table row, "add to
    /// cart", a part number next to its maker.
    Strong,
}

impl Weight {
    /// The factor a finding's classification confidence is multiplied by.
    pub fn factor(self) -> f32 {
        match self {
            Weight::Strong => 1.0,
            Weight::Medium => 0.6,
            Weight::Weak => 0.2,
        }
    }

    /// `strong`, `medium`, `weak`.
    pub fn as_str(self) -> &'static str {
        match self {
            Weight::Strong => "strong",
            Weight::Medium => "medium",
            Weight::Weak => "weak",
        }
    }
}

/// The context weight an item of a site record carries.
pub fn item_weight(item: &Item) -> Option<Weight> {
    let c = item.extra.get(CONTEXT_COLUMN)?;
    [Weight::Strong, Weight::Medium, Weight::Weak]
        .into_iter()
        .find(|w| c.starts_with(w.as_str()))
}

/// Applies the context weights of a site source's record to the findings
/// of its check: each evidence item from this source has its confidence
/// multiplied by its weight's factor and its context stated as a fact; a
/// finding above medium that rests on no strong (product-page) mention
/// and on no item of another source is lowered to medium, saying why.
pub fn weigh_findings(mut findings: Vec<Finding>, source: &str, record: &Record) -> Vec<Finding> {
    for f in &mut findings {
        let mut any_strong = false;
        let mut others = false;
        let mut weighed = 0usize;
        for ev in &mut f.evidence.items {
            if ev.source != source {
                others = true;
                continue;
            }
            let Some(item) = record.items.get(&ev.key) else {
                continue;
            };
            let Some(w) = item_weight(item) else { continue };
            weighed += 1;
            any_strong |= w == Weight::Strong;
            ev.confidence = ((ev.confidence * w.factor()) * 100.0).round() / 100.0;
            let label = ev
                .part_number
                .clone()
                .or_else(|| ev.manufacturer.clone())
                .unwrap_or_else(|| ev.key.clone());
            let seen = item.extra.get(SEEN_ON_COLUMN).cloned().unwrap_or_default();
            let snippet = item.extra.get(SNIPPET_COLUMN).cloned().unwrap_or_default();
            f.evidence.facts.insert(
                format!("context of {label}"),
                format!(
                    "{} × {}; seen on {seen}: “{snippet}”",
                    item.extra.get(CONTEXT_COLUMN).cloned().unwrap_or_default(),
                    w.factor()
                ),
            );
        }
        if weighed > 0 {
            f.explanation.push_str(&format!(
                " On the website, each mention's classification confidence is weighed by its context (product page ×{}, plain text ×{}); the facts give each mention's context and pages.",
                Weight::Strong.factor(),
                Weight::Medium.factor()
            ));
            if !any_strong && !others && f.severity > Severity::Medium {
                f.severity = Severity::Medium;
                f.explanation.push_str(
                    " Lowered to medium: no mention is on a product page (no price, product data, table row or add-to-cart), so the site names these makers without showing that it sells them.",
                );
            }
        }
    }
    findings
}
