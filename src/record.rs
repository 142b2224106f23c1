//! The data model shared by every stage: what one fetch yields ([`Record`]),
//! what is kept of it ([`Snapshot`]), what differs between two of them
//! ([`Change`]) and what a rule concludes ([`Finding`]).
//!
//! **Architecture Invariant:** plain data. Nothing here does I/O, and every
//! type serialises with serde so the store, `--json` output and the alert
//! renderer all see the same shape.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The value of one extracted field: a single text or, for `all = true`
/// fields, a list of texts (compared as a set: order never matters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// One text (first match).
    Text(String),
    /// Every match, in page order.
    List(Vec<String>),
}

impl FieldValue {
    /// The value as one line of display text.
    pub fn display(&self) -> String {
        match self {
            FieldValue::Text(t) => t.clone(),
            FieldValue::List(l) => l.join("; "),
        }
    }
}

/// One catalogue row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Item {
    /// Stable key: normalised part number, else normalised name (see
    /// [`crate::extract::item_key`]).
    pub key: String,
    /// Product name or designation as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Brand column as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Part number as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<String>,
    /// Price as shown (text: currencies and formats vary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Absolute link to the item's page, when the row has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Free extra columns declared in the watchlist.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Item {
    /// A short human label: part number and name where present.
    pub fn label(&self) -> String {
        match (&self.part_number, &self.name) {
            (Some(p), Some(n)) if !n.is_empty() && n != p => format!("{p} ({n})"),
            (Some(p), _) => p.clone(),
            (None, Some(n)) => n.clone(),
            (None, None) => self.key.clone(),
        }
    }

    /// The comparable attributes of the item, by name, for diffing.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_string(), v.clone());
            }
        };
        put("name", &self.name);
        put("manufacturer", &self.manufacturer);
        put("part_number", &self.part_number);
        put("price", &self.price);
        put("link", &self.link);
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// [`Item::attributes`] borrowed: the same pairs in the same (byte)
    /// order, nothing copied.
    pub fn attribute_pairs(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(5 + self.extra.len());
        for (k, v) in [
            ("link", &self.link),
            ("manufacturer", &self.manufacturer),
            ("name", &self.name),
            ("part_number", &self.part_number),
            ("price", &self.price),
        ] {
            // An extra column of the same name wins, as in `attributes`.
            if let Some(v) = v
                && !self.extra.contains_key(k)
            {
                out.push((k, v));
            }
        }
        out.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// The JSON text of [`Item::attributes`] (`{"k":"v",…}`, keys in byte
    /// order), written without building the map: the order in which
    /// rows sharing a key get their `#2`, `#3` … suffixes.
    pub fn attributes_json(&self) -> String {
        let pairs = self.attribute_pairs();
        let mut out = Vec::with_capacity(
            2 + pairs
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>(),
        );
        out.push(b'{');
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(&mut out, k);
            out.push(b':');
            json_str(&mut out, v);
        }
        out.push(b'}');
        // Only whole JSON strings and ASCII punctuation were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// What one check of one source yields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Record {
    /// Named fields (registry records, page fields).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldValue>,
    /// Catalogue rows by key.
    #[serde(default)]
    pub items: BTreeMap<String, Item>,
}

/// Outcome of one check, as reported by `once` and stored in source state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// First snapshot of this source.
    New,
    /// A new snapshot that differs from the previous one.
    Changed,
    /// Nothing in the selected region changed.
    Unchanged,
    /// Fetch or extraction failed.
    Failed,
    /// The site answered with a block page or bot challenge.
    Blocked,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::New => "new",
            CheckStatus::Changed => "changed",
            CheckStatus::Unchanged => "unchanged",
            CheckStatus::Failed => "failed",
            CheckStatus::Blocked => "blocked",
        })
    }
}

/// One stored, distinct record of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Store-wide unique, increasing id.
    pub id: u64,
    /// `entity/source`.
    pub source: String,
    /// The URL fetched (the first page for paginated sources).
    pub url: String,
    /// When the body was fetched.
    pub fetched_at: DateTime<Utc>,
    /// HTTP status of the (first) response.
    pub http_status: u16,
    /// BLAKE3 hash (hex) of the raw body; the body itself is kept in the
    /// blob store under this hash as evidence.
    pub body_hash: String,
    /// The extracted record.
    pub record: Record,
    /// How the body was fetched: the responses it came from and the
    /// SHA-256 of the body. `None` in snapshots written before it was
    /// kept (they still read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<FetchMeta>,
}

/// How a snapshot's stored body was fetched: the evidence that it is what
/// the site served, when and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchMeta {
    /// SHA-256 (lowercase hex) of the stored body, as decoded (after
    /// `Content-Encoding`; the bytes `pivotwatch evidence` writes).
    pub body_sha256: String,
    /// One entry per page, in the order their bodies were joined (one for
    /// a source without pagination).
    pub responses: Vec<ResponseMeta>,
}

/// One HTTP response behind a stored body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMeta {
    /// The URL requested.
    pub requested_url: String,
    /// The URL that answered, after redirects.
    pub final_url: String,
    /// HTTP status code.
    pub status: u16,
    /// The response headers that matter as evidence (`content-type`,
    /// `date`, `last-modified`, `etag`, `server`, `content-length`,
    /// `content-encoding`), names in lowercase, values as sent.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The address of the server that answered (`ip:port`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// When the request was sent.
    pub started_at: DateTime<Utc>,
    /// When the last byte of the body was read.
    pub finished_at: DateTime<Utc>,
    /// Where this response's body starts in the stored body (bytes).
    pub body_offset: u64,
    /// Its length in the stored body (bytes, decoded).
    pub body_len: u64,
    /// A whole-site page: its body is the store blob under this hash (kept
    /// as long as the snapshot), not a range of the snapshot's own body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_blob: Option<String>,
}

impl ResponseMeta {
    /// The IP address of [`ResponseMeta::remote_addr`], without the port.
    pub fn remote_ip(&self) -> Option<String> {
        let a = self.remote_addr.as_deref()?;
        a.parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .ok()
    }
}

/// One semantic difference between two records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A single-valued field changed.
    FieldChanged {
        /// Field name.
        field: String,
        /// Old value (absent when the field is new).
        old: Option<String>,
        /// New value (absent when the field disappeared).
        new: Option<String>,
    },
    /// A value appeared in a list field.
    ValueAdded {
        /// Field name.
        field: String,
        /// The added value.
        new: String,
    },
    /// A value disappeared from a list field.
    ValueRemoved {
        /// Field name.
        field: String,
        /// The removed value.
        old: String,
    },
    /// A catalogue row appeared.
    ItemAdded {
        /// Item key.
        item: String,
        /// The new row.
        new: Item,
    },
    /// A catalogue row disappeared.
    ItemRemoved {
        /// Item key.
        item: String,
        /// The old row.
        old: Item,
    },
    /// A catalogue row with the same key changed some attributes.
    ItemChanged {
        /// Item key.
        item: String,
        /// The old row.
        old: Item,
        /// The new row.
        new: Item,
        /// Names of the attributes that differ.
        attributes: Vec<String>,
    },
}

impl Change {
    /// A one-line human description.
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
        match self {
            Change::FieldChanged { field, old, new } => {
                format!("{field}: {:?} → {:?}", show(old), show(new))
            }
            Change::ValueAdded { field, new } => format!("{field}: + {new:?}"),
            Change::ValueRemoved { field, old } => format!("{field}: - {old:?}"),
            Change::ItemAdded { new, .. } => format!("item added: {}", describe_item(new)),
            Change::ItemRemoved { old, .. } => format!("item removed: {}", describe_item(old)),
            Change::ItemChanged {
                item,
                old,
                new,
                attributes,
            } => {
                let (o, n) = (old.attributes(), new.attributes());
                let parts: Vec<String> = attributes
                    .iter()
                    .map(|a| {
                        format!(
                            "{a} {:?} → {:?}",
                            o.get(a).map(String::as_str).unwrap_or("(none)"),
                            n.get(a).map(String::as_str).unwrap_or("(none)")
                        )
                    })
                    .collect();
                format!("item changed {item}: {}", parts.join(", "))
            }
        }
    }
}

fn describe_item(item: &Item) -> String {
    let mut s = item.label();
    if let Some(m) = &item.manufacturer {
        s.push_str(&format!(" by {m}"));
    }
    if let Some(p) = &item.price {
        s.push_str(&format!(" at {p}"));
    }
    s
}

/// How serious a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record; no action expected.
    #[default]
    Info,
    /// Worth a look.
    Low,
    /// Worth a look soon.
    Medium,
    /// Likely a pivot.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// Lowercase name as in the settings and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}; use info, low, medium, high or critical"
            )),
        }
    }
}

/// Evidence attached to a finding: enough to check the claim later.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// The URL the snapshot came from.
    pub url: String,
    /// Snapshot the finding was computed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<u64>,
    /// The snapshot it was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_snapshot: Option<u64>,
    /// The changes that triggered the finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Free facts (e.g. "registered activity" → "NACE 46.77").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// Classified catalogue items behind the finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<EvidenceItem>,
}

/// One catalogue item as evidence: what the page said and how it classified.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// `entity/source` it was listed on.
    pub source: String,
    /// Item key.
    pub key: String,
    /// Part number as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<String>,
    /// Name as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Brand column as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Canonical manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Manufacturer's country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Product family label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// HS-6 code, dotted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_code: Option<String>,
    /// CHPL tier ("1", "2", "3.A" …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Classification confidence, 0 to 1.
    pub confidence: f32,
}

/// What a rule concluded about one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Store-wide unique, increasing id (0 until committed).
    pub id: u64,
    /// Entity id.
    pub entity: String,
    /// Source id (within the entity).
    pub source: String,
    /// Watchlist name the entity belongs to.
    pub watchlist: String,
    /// Rule id, e.g. `items_added`.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// One sentence a human can check.
    pub summary: String,
    /// Longer explanation (may span lines).
    #[serde(default)]
    pub explanation: String,
    /// Evidence.
    pub evidence: Evidence,
    /// Stable key: the same condition yields the same key, so it is not
    /// raised twice.
    pub dedup_key: String,
    /// Keys of the facts behind the finding (a tier, a manufacturer, an
    /// item). A finding that has them is raised only when at least one of
    /// them is new: the condition escalated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation_keys: Vec<String>,
    /// When the finding was made.
    pub created_at: DateTime<Utc>,
}

impl Finding {
    /// The command that writes this finding's evidence bundle (named in
    /// its alert and on the status page).
    pub fn evidence_command(&self) -> String {
        format!(
            "pivotwatch evidence finding:{} --out finding-{}.zip",
            self.id, self.id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of every shape the tricky pieces below make: fields absent or
    /// present, extras that shadow a standard column or sort between them,
    /// and text that needs JSON escapes.
    fn items() -> Vec<Item> {
        const TEXT: &[&str] = &[
            "",
            "TMS320C6748",
            "a\"b",
            "back\\slash",
            "\u{1}\u{1f}\t\n",
            "Texas Instruments – DSP",
            "\u{2028}💡</script>",
        ];
        const EXTRA: &[&str] = &[
            "name", "link", "package", "Zeta", "a", "price_", "é", "", "q\"uote",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        (0..2000)
            .map(|_| {
                let mut pick = || match next(TEXT.len() + 1) {
                    0 => None,
                    i => Some(TEXT[i - 1].to_string()),
                };
                let mut it = Item {
                    key: "k".into(),
                    name: pick(),
                    manufacturer: pick(),
                    part_number: pick(),
                    price: pick(),
                    link: pick(),
                    extra: BTreeMap::new(),
                };
                for _ in 0..next(4) {
                    it.extra.insert(
                        EXTRA[next(EXTRA.len())].to_string(),
                        TEXT[next(TEXT.len())].to_string(),
                    );
                }
                it
            })
            .collect()
    }

    #[test]
    fn borrowed_attributes_and_their_json_are_those_of_the_map() {
        let mut shadowed = 0;
        for it in items() {
            let map = it.attributes();
            let pairs = it.attribute_pairs();
            let from_map: Vec<(&str, &str)> =
                map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(pairs, from_map, "{it:?}");
            let json = serde_json::to_string(&map).expect("serialises");
            assert_eq!(it.attributes_json(), json, "{it:?}");
            shadowed += usize::from(it.extra.contains_key("name") && it.name.is_some());
        }
        // The generator did make extras that shadow a standard column.
        assert!(shadowed > 10, "{shadowed}");
    }
}
