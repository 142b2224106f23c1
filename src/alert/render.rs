//! The alert email: subject, text and HTML parts, headers.
//!
//! Everything scraped is hostile: headers get it only through
//! [`sanitize_header`] (no CR, LF, control or bidi characters; bounded), the
//! HTML part only escaped (no links, no images, no scripts, a CSP that
//! forbids loading anything), and both bodies are base64-encoded, so no
//! scraped byte reaches the SMTP stream raw: no bare CR or LF, no line that
//! is a lone `.`, no 8-bit data.

use std::collections::BTreeMap;

use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::{AlertError, BuildError};
use crate::config::{Entity, Settings, Subscriber};
use crate::detect::truncate;
use crate::record::{Change, EvidenceItem, Finding, Severity};
use crate::store::Delivery;

/// Longest Subject line, in characters.
pub const MAX_SUBJECT: usize = 150;
/// Evidence rows shown per finding in a single alert.
const MAX_ROWS: usize = 200;
/// Evidence rows shown per finding in a digest.
const MAX_DIGEST_ROWS: usize = 20;

/// A rendered mail, ready for a transport.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subject line as sent.
    pub subject: String,
    /// The Message-ID (with angle brackets).
    pub message_id: String,
    /// The message.
    pub message: Message,
}

impl Rendered {
    /// A file name stem derived from the Message-ID (spool files).
    pub fn file_stem(&self) -> String {
        self.message_id
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

fn is_invisible(c: char) -> bool {
    // Bidi overrides and isolates, zero-width characters, BOM: they can
    // make a subject read differently from what it says.
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

/// Removes CR, LF and every other control character, bidi and zero-width
/// characters, collapses whitespace and bounds the length, so scraped text
/// can never add a header line or disguise itself.
pub fn sanitize_header(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(
        &cleaned.split_whitespace().collect::<Vec<_>>().join(" "),
        max,
    )
}

/// Scraped text for a body: line ends normalised to `\n`, other control
/// characters (but tab) and invisible characters removed.
fn clean(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| (!c.is_control() || *c == '\n' || *c == '\t') && !is_invisible(*c))
        .collect()
}

/// The Subject line of a finding's mail: `[pivotwatch] SEVERITY Entity: summary`,
/// sanitised and bounded.
pub fn subject(entity_name: &str, f: &Finding) -> String {
    sanitize_header(
        &format!(
            "[pivotwatch] {} {}: {}",
            f.severity.as_str().to_uppercase(),
            entity_name,
            f.summary
        ),
        MAX_SUBJECT,
    )
}

macro_rules! text_header {
    ($name:ident, $header:literal) => {
        #[derive(Debug, Clone)]
        struct $name(String);
        impl Header for $name {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($header)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($name(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
text_header!(ListId, "List-Id");
text_header!(AutoSubmitted, "Auto-Submitted");
text_header!(PivotwatchFinding, "X-Pivotwatch-Finding");
text_header!(PivotwatchDigest, "X-Pivotwatch-Digest");

fn short_hash(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..12].to_string()
}

fn from_mailbox(settings: &Settings) -> Result<Mailbox, AlertError> {
    settings.email.from.parse().map_err(|source| {
        AlertError::Build(BuildError::From {
            from: settings.email.from.clone(),
            source,
        })
    })
}

fn list_label(s: &str) -> String {
    let l: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if l.is_empty() { "watchlist".into() } else { l }
}

/// What every pivotwatch mail shares: From, To (exactly the subscriber's
/// addresses), Subject, Message-ID, List-Id, Auto-Submitted, and a
/// multipart/alternative body whose parts are base64.
struct Draft<'a> {
    settings: &'a Settings,
    to: &'a [String],
    who: &'a str,
    subject: String,
    message_id: String,
    list: &'a str,
    finding_header: Option<String>,
    digest_header: Option<String>,
    text: String,
    html: String,
}

fn base64_part(content_type: ContentType, s: String) -> Result<SinglePart, AlertError> {
    let body = Body::new_with_encoding(s, ContentTransferEncoding::Base64)
        .map_err(|_| AlertError::Build(BuildError::Encoding))?;
    Ok(SinglePart::builder().header(content_type).body(body))
}

impl Draft<'_> {
    fn build(self) -> Result<Rendered, AlertError> {
        let from = from_mailbox(self.settings)?;
        let domain = from.email.domain().to_string();
        let mut b = Message::builder()
            .from(from)
            .subject(self.subject.clone())
            .message_id(Some(self.message_id.clone()))
            .header(ListId(format!(
                "pivotwatch {} <{}.pivotwatch.{}>",
                sanitize_header(self.list, 60),
                list_label(self.list),
                domain
            )))
            .header(AutoSubmitted("auto-generated".into()));
        if let Some(h) = self.finding_header {
            b = b.header(PivotwatchFinding(h));
        }
        if let Some(h) = self.digest_header {
            b = b.header(PivotwatchDigest(h));
        }
        if self.to.is_empty() {
            return Err(AlertError::Build(BuildError::NoRecipient {
                who: self.who.to_string(),
            }));
        }
        for to in self.to {
            let mb: Mailbox = to.parse().map_err(|source| BuildError::To {
                who: self.who.to_string(),
                to: to.clone(),
                source,
            })?;
            b = b.to(mb);
        }
        let message = b
            .multipart(
                MultiPart::alternative()
                    .singlepart(base64_part(ContentType::TEXT_PLAIN, self.text)?)
                    .singlepart(base64_part(ContentType::TEXT_HTML, self.html)?),
            )
            .map_err(BuildError::Message)?;
        Ok(Rendered {
            subject: self.subject,
            message_id: self.message_id,
            message,
        })
    }
}

fn domain_of(settings: &Settings) -> Result<String, AlertError> {
    Ok(from_mailbox(settings)?.email.domain().to_string())
}

/// The Message-ID of a finding's mail to a subscriber: depends only on
/// (store, finding, subscriber), so a resend from the same store is
/// recognisably the same mail, and another store (a second installation, or
/// a store created afresh, whose finding ids start again) never reuses it.
/// `installation` is [`crate::store::Store::installation_id`].
pub fn finding_message_id(
    settings: &Settings,
    installation: &str,
    finding: u64,
    subscriber: &str,
) -> Result<String, AlertError> {
    Ok(format!(
        "<finding-{finding}.{}.{}@{}>",
        short_hash(subscriber),
        installation_label(installation),
        domain_of(settings)?
    ))
}

/// The installation id as it goes into a Message-ID: the store keeps 32
/// hex digits; anything else is reduced to the characters a Message-ID
/// may carry.
fn installation_label(installation: &str) -> String {
    let l: String = installation
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    if l.is_empty() { "0".into() } else { l }
}

/// Renders the mail of one finding for one subscriber. The Message-ID is
/// the one an earlier attempt of this delivery used (kept in the outbox;
/// a store written by an older pivotwatch has ids without the installation
/// id), else [`finding_message_id`]: a resend is always the same mail.
pub fn render(
    settings: &Settings,
    installation: &str,
    entity: Option<&Entity>,
    f: &Finding,
    sub: &Subscriber,
    delivery: &Delivery,
) -> Result<Rendered, AlertError> {
    let entity_name = entity.map(|e| e.name.as_str()).unwrap_or(f.entity.as_str());
    Draft {
        settings,
        to: &sub.to,
        who: &format!("subscriber {:?}", sub.name),
        subject: subject(entity_name, f),
        message_id: match &delivery.message_id {
            // Only a finding mail's own id (not a digest's, should the
            // subscriber have changed mode since).
            Some(id) if id.starts_with(&format!("<finding-{}.", f.id)) => id.clone(),
            _ => finding_message_id(settings, installation, f.id, &sub.name)?,
        },
        list: &f.watchlist,
        finding_header: Some(format!("{} {}", f.id, sanitize_header(&f.rule, 60))),
        digest_header: None,
        text: text_body(entity_name, f),
        html: page(&finding_html(entity_name, f, MAX_ROWS)),
    }
    .build()
}

/// The plain-text part of an alert.
pub fn text_body(entity_name: &str, f: &Finding) -> String {
    let mut s = finding_text(entity_name, f, MAX_ROWS);
    s.push_str("\n-- \npivotwatch: `pivotwatch diff ");
    s.push_str(&format!(
        "{}/{}` shows the full change.\n",
        f.entity, f.source
    ));
    s.push_str(&format!(
        "`{}` writes the evidence bundle (pages as fetched, with SHA-256s).\n",
        f.evidence_command()
    ));
    s
}

fn finding_text(entity_name: &str, f: &Finding, max_rows: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", clean(&f.summary)));
    s.push_str(&format!("Entity:    {} ({})\n", entity_name, f.entity));
    s.push_str(&format!("Source:    {}\n", f.source));
    s.push_str(&format!("Watchlist: {}\n", f.watchlist));
    s.push_str(&format!(
        "Rule:      {} (severity {})\n",
        f.rule, f.severity
    ));
    s.push_str(&format!("URL:       {}\n", clean(&f.evidence.url)));
    if let Some(id) = f.evidence.snapshot {
        s.push_str(&format!("Snapshot:  {id}"));
        if let Some(p) = f.evidence.previous_snapshot {
            s.push_str(&format!(" (compared with {p})"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Finding:   {} at {}\n",
        f.id,
        f.created_at.to_rfc3339()
    ));
    for (k, v) in &f.evidence.facts {
        s.push_str(&format!("{}: {}\n", clean(k), clean(v)));
    }
    if !f.evidence.items.is_empty() {
        s.push_str("\nItems:\n");
        for it in f.evidence.items.iter().take(max_rows) {
            s.push_str(&format!("  - {}\n", clean(&item_line(it))));
        }
        more_text(&mut s, f.evidence.items.len(), max_rows);
    }
    if !f.evidence.changes.is_empty() {
        s.push_str("\nEvidence:\n");
        for c in f.evidence.changes.iter().take(max_rows) {
            s.push_str(&format!("  - {}\n", clean(&c.describe())));
        }
        more_text(&mut s, f.evidence.changes.len(), max_rows);
    }
    if !f.explanation.is_empty() {
        s.push_str(&format!("\nWhy:\n{}\n", clean(&f.explanation)));
    }
    s
}

fn more_text(s: &mut String, n: usize, max: usize) {
    if n > max {
        s.push_str(&format!(
            "  … and {} more (see `pivotwatch findings --json`)\n",
            n - max
        ));
    }
}

fn item_line(it: &EvidenceItem) -> String {
    let mut parts = vec![
        it.part_number
            .clone()
            .or_else(|| it.name.clone())
            .unwrap_or_else(|| it.key.clone()),
    ];
    // Only an attributed maker is "by"; a brand column that named no listed maker is
    // shown as listed, never as the maker.
    match (&it.manufacturer, &it.brand) {
        (Some(m), _) => match &it.country {
            Some(c) => parts.push(format!("by {m} ({c})")),
            None => parts.push(format!("by {m}")),
        },
        (None, Some(b)) if !b.trim().is_empty() => parts.push(format!("brand \"{b}\" as listed")),
        (None, _) => {}
    }
    if let Some(f) = &it.family {
        parts.push(f.clone());
    }
    if let Some(h) = &it.hs_code {
        parts.push(format!("HS {h}"));
    }
    if let Some(t) = &it.tier {
        parts.push(format!("CHPL tier {t}"));
    }
    if let (Some(n), Some(_)) = (&it.name, &it.part_number) {
        parts.push(format!("\"{n}\""));
    }
    parts.join(", ")
}

fn e(s: &str) -> String {
    html_escape::encode_text(&clean(s)).into_owned()
}

/// Wraps HTML content in a page that may load nothing: no remote images,
/// no scripts, no styles from outside.
fn page(content: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         </head><body style=\"font-family:sans-serif\">{content}</body></html>"
    )
}

fn finding_html(entity_name: &str, f: &Finding, max_rows: usize) -> String {
    let mut h = String::new();
    h.push_str(&format!("<p><strong>{}</strong></p>", e(&f.summary)));
    h.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">");
    let mut row = |k: &str, v: String| {
        h.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            e(k),
            v
        ))
    };
    row("Entity", format!("{} ({})", e(entity_name), e(&f.entity)));
    row("Source", e(&f.source));
    row("Watchlist", e(&f.watchlist));
    row(
        "Rule",
        format!("{} (severity {})", e(&f.rule), e(f.severity.as_str())),
    );
    // The URL is shown as text, not a link: the mail must not make the
    // reader's client fetch anything.
    row("URL", format!("<code>{}</code>", e(&f.evidence.url)));
    if let Some(id) = f.evidence.snapshot {
        row(
            "Snapshot",
            match f.evidence.previous_snapshot {
                Some(p) => format!("{id} (compared with {p})"),
                None => id.to_string(),
            },
        );
    }
    row(
        "Finding",
        format!("{} at {}", f.id, e(&f.created_at.to_rfc3339())),
    );
    row(
        "Evidence bundle",
        format!("<code>{}</code>", e(&f.evidence_command())),
    );
    for (k, v) in &f.evidence.facts {
        row(k, e(v));
    }
    h.push_str("</table>");
    if !f.evidence.items.is_empty() {
        h.push_str("<h3>Items</h3><table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\"><tr><th>part number</th><th>manufacturer</th><th>family</th><th>HS code</th><th>CHPL tier</th><th>as listed</th></tr>");
        for it in f.evidence.items.iter().take(max_rows) {
            let opt = |o: &Option<String>| e(o.as_deref().unwrap_or(""));
            let maker = match (&it.manufacturer, &it.country) {
                (Some(m), Some(c)) => format!("{} ({})", e(m), e(c)),
                (Some(m), None) => e(m),
                (None, _) => opt(&it.brand),
            };
            let listed = [it.name.as_deref(), it.brand.as_deref()]
                .into_iter()
                .flatten()
                .map(e)
                .collect::<Vec<_>>()
                .join(" / ");
            h.push_str(&format!(
                "<tr><td>{}</td><td>{maker}</td><td>{}</td><td>{}</td><td>{}</td><td>{listed}</td></tr>",
                e(it.part_number.as_deref().unwrap_or(&it.key)),
                opt(&it.family),
                opt(&it.hs_code),
                opt(&it.tier),
            ));
        }
        h.push_str("</table>");
        more_html(&mut h, f.evidence.items.len(), max_rows);
    }
    if !f.evidence.changes.is_empty() {
        h.push_str("<h3>Evidence</h3><table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\"><tr><th>change</th><th>what</th><th>before</th><th>after</th></tr>");
        for c in f.evidence.changes.iter().take(max_rows) {
            let (kind, what, before, after) = change_row(c);
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(kind),
                e(&what),
                e(&before),
                e(&after)
            ));
        }
        h.push_str("</table>");
        more_html(&mut h, f.evidence.changes.len(), max_rows);
    }
    if !f.explanation.is_empty() {
        h.push_str(&format!("<h3>Why</h3><pre>{}</pre>", e(&f.explanation)));
    }
    h
}

fn more_html(h: &mut String, n: usize, max: usize) {
    if n > max {
        h.push_str(&format!(
            "<p>… and {} more (see <code>pivotwatch findings --json</code>)</p>",
            n - max
        ));
    }
}

fn item_cell(i: &crate::record::Item) -> String {
    let mut parts = vec![i.label()];
    if let Some(m) = &i.manufacturer {
        parts.push(format!("by {m}"));
    }
    if let Some(p) = &i.part_number
        && !i.label().contains(p.as_str())
    {
        parts.push(format!("part {p}"));
    }
    if let Some(p) = &i.price {
        parts.push(format!("at {p}"));
    }
    parts.join(" ")
}

fn change_row(c: &Change) -> (&'static str, String, String, String) {
    match c {
        Change::FieldChanged { field, old, new } => (
            "field changed",
            field.clone(),
            old.clone().unwrap_or_default(),
            new.clone().unwrap_or_default(),
        ),
        Change::ValueAdded { field, new } => {
            ("value added", field.clone(), String::new(), new.clone())
        }
        Change::ValueRemoved { field, old } => {
            ("value removed", field.clone(), old.clone(), String::new())
        }
        Change::ItemAdded { item, new } => {
            ("item added", item.clone(), String::new(), item_cell(new))
        }
        Change::ItemRemoved { item, old } => {
            ("item removed", item.clone(), item_cell(old), String::new())
        }
        Change::ItemChanged { item, old, new, .. } => {
            ("item changed", item.clone(), item_cell(old), item_cell(new))
        }
    }
}

/// One finding in a digest, with its entity's display name.
#[derive(Debug, Clone)]
pub struct DigestEntry {
    /// The entity's name (or id when it is no longer configured).
    pub entity_name: String,
    /// The finding.
    pub finding: Finding,
}

/// The Message-ID of a digest: depends on the store, the subscriber and
/// the exact set of findings it carries, so a digest resent after a crash
/// is the same mail, and a digest with other findings (or from another
/// store) is another.
pub fn digest_message_id(
    settings: &Settings,
    installation: &str,
    subscriber: &str,
    findings: &[u64],
) -> Result<String, AlertError> {
    let mut ids = findings.to_vec();
    ids.sort_unstable();
    let key: Vec<String> = ids.iter().map(u64::to_string).collect();
    Ok(format!(
        "<digest-{}.{}.{}@{}>",
        short_hash(&key.join(",")),
        short_hash(subscriber),
        installation_label(installation),
        domain_of(settings)?
    ))
}

/// Renders one digest: every finding given, grouped by entity, most severe
/// first within each entity (and entities ordered by their most severe
/// finding). `held_back` findings did not fit and wait for the next digest.
pub fn render_digest(
    settings: &Settings,
    installation: &str,
    sub: &Subscriber,
    entries: &[DigestEntry],
    held_back: usize,
) -> Result<Rendered, AlertError> {
    let mut groups: BTreeMap<&str, Vec<&DigestEntry>> = BTreeMap::new();
    for d in entries {
        groups.entry(&d.finding.entity).or_default().push(d);
    }
    let mut groups: Vec<(&str, Vec<&DigestEntry>)> = groups.into_iter().collect();
    for (_, v) in &mut groups {
        v.sort_by(|a, b| {
            b.finding
                .severity
                .cmp(&a.finding.severity)
                .then(a.finding.id.cmp(&b.finding.id))
        });
    }
    let top = |v: &Vec<&DigestEntry>| v.first().map(|d| d.finding.severity).unwrap_or_default();
    groups.sort_by(|a, b| top(&b.1).cmp(&top(&a.1)).then(a.0.cmp(b.0)));

    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for d in entries {
        *counts.entry(d.finding.severity).or_default() += 1;
    }
    let count_line = counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = entries.len();
    let subject = sanitize_header(
        &format!(
            "[pivotwatch] digest: {n} finding{} on {} entit{} ({count_line})",
            if n == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "y" } else { "ies" }
        ),
        MAX_SUBJECT,
    );
    let ids: Vec<u64> = entries.iter().map(|d| d.finding.id).collect();
    let mut watchlists: Vec<&str> = entries
        .iter()
        .map(|d| d.finding.watchlist.as_str())
        .collect();
    watchlists.sort_unstable();
    watchlists.dedup();
    let list = if watchlists.len() == 1 {
        watchlists[0].to_string()
    } else {
        "digest".to_string()
    };

    let mut text = format!(
        "{n} finding(s) since the last digest for {} ({count_line}).\n",
        sub.name
    );
    let mut html = format!(
        "<p><strong>{n} finding(s)</strong> since the last digest for {} ({}).</p>",
        e(&sub.name),
        e(&count_line)
    );
    if held_back > 0 {
        text.push_str(&format!(
            "{held_back} more finding(s) did not fit and follow in the next digest.\n"
        ));
        html.push_str(&format!(
            "<p>{held_back} more finding(s) did not fit and follow in the next digest.</p>"
        ));
    }
    html.push_str("<ul>");
    for (entity, v) in &groups {
        let name = v.first().map(|d| d.entity_name.as_str()).unwrap_or(entity);
        html.push_str(&format!(
            "<li>{} ({}): {} finding(s)</li>",
            e(name),
            e(entity),
            v.len()
        ));
    }
    html.push_str("</ul>");
    for (entity, v) in &groups {
        let name = v.first().map(|d| d.entity_name.as_str()).unwrap_or(entity);
        text.push_str(&format!("\n==== {name} ({entity})\n"));
        html.push_str(&format!("<hr><h2>{} ({})</h2>", e(name), e(entity)));
        let mut last: Option<Severity> = None;
        for d in v {
            if last != Some(d.finding.severity) {
                let sev = d.finding.severity.as_str().to_uppercase();
                text.push_str(&format!("\n-- {sev}\n"));
                html.push_str(&format!("<h3>{sev}</h3>"));
                last = Some(d.finding.severity);
            }
            text.push('\n');
            text.push_str(&finding_text(name, &d.finding, MAX_DIGEST_ROWS));
            html.push_str("<div style=\"margin:0 0 1.5em 1em\">");
            html.push_str(&finding_html(name, &d.finding, MAX_DIGEST_ROWS));
            html.push_str("</div>");
        }
    }
    text.push_str("\n-- \npivotwatch digest. `pivotwatch findings --since 7d` lists them too.\n");
    Draft {
        settings,
        to: &sub.to,
        who: &format!("subscriber {:?}", sub.name),
        subject,
        message_id: digest_message_id(settings, installation, &sub.name, &ids)?,
        list: &list,
        finding_header: None,
        digest_header: Some(format!("{n} findings")),
        text,
        html: page(&html),
    }
    .build()
}

/// A test mail for `send-test-email`.
pub fn render_test(
    settings: &Settings,
    sub: &Subscriber,
    via: &str,
) -> Result<Rendered, AlertError> {
    let now = chrono::Utc::now();
    let mut text = format!(
        "This is a test message from pivotwatch for subscriber {}.\n\nSent at {} via {via}.\nMode: {:?}",
        sub.name,
        now.to_rfc3339(),
        sub.mode
    );
    if let Some(s) = &sub.digest_schedule {
        text.push_str(&format!(" ({} {})", s.as_str(), sub.timezone));
    }
    text.push_str(&format!(
        "\nMinimum severity: {}\nWatchlists: {}\nTags: {}\n\nIf you can read this, alerts will reach you.\n",
        sub.min_severity,
        if sub.watchlists.is_empty() { "all".to_string() } else { sub.watchlists.join(", ") },
        if sub.tags.is_empty() { "all".to_string() } else { sub.tags.join(", ") },
    ));
    let html = page(&format!("<pre>{}</pre>", e(&text)));
    Draft {
        settings,
        to: &sub.to,
        who: &format!("subscriber {:?}", sub.name),
        subject: sanitize_header(
            &format!("[pivotwatch] test message for {}", sub.name),
            MAX_SUBJECT,
        ),
        message_id: format!(
            "<test-{}.{}@{}>",
            now.timestamp_nanos_opt().unwrap_or_default(),
            short_hash(&sub.name),
            domain_of(settings)?
        ),
        list: "test",
        finding_header: None,
        digest_header: None,
        text,
        html,
    }
    .build()
}

/// A notice to people who are not subscribers (a watchlist's maintainers):
/// plain text, with a Message-ID derived from `key` and the installation,
/// so a resent notice is the same mail, while the same notice key from
/// another store (two installations sharing maintainers, or a store created
/// afresh whose "broken since never" key repeats) is another mail and is
/// not dropped as a duplicate.
pub fn render_notice(
    settings: &Settings,
    installation: &str,
    to: &[String],
    list: &str,
    subject: &str,
    text: &str,
    key: &str,
) -> Result<Rendered, AlertError> {
    let text = clean(text);
    let html = page(&format!("<pre>{}</pre>", e(&text)));
    Draft {
        settings,
        to,
        who: &format!("maintainers of {list:?}"),
        subject: sanitize_header(&format!("[pivotwatch] {subject}"), MAX_SUBJECT),
        message_id: format!(
            "<notice-{}.{}@{}>",
            short_hash(key),
            installation_label(installation),
            domain_of(settings)?
        ),
        list,
        finding_header: None,
        digest_header: None,
        text,
        html,
    }
    .build()
}

// Unit tests of the pure renderers (issue 11); the mail as a whole is
// tested end to end in tests/it/delivery.rs.
#[cfg(test)]
mod tests {
    use super::*;

    fn finding(summary: &str) -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": 7, "entity": "acme", "source": "shop", "watchlist": "w",
            "rule": "items_added", "severity": "high",
            "summary": summary,
            "evidence": { "url": "http://127.0.0.1:9/shop" },
            "dedup_key": "k",
            "created_at": "2026-01-01T00:00:00Z",
        }))
        .expect("finding JSON")
    }

    #[test]
    fn subject_has_no_line_breaks_controls_or_invisible_characters_and_is_bounded() {
        let f = finding("new\r\nBcc: victim@example.org\u{202E}gpj.exe\u{200B} \t items");
        let s = subject("Acme\nLtd", &f);
        assert_eq!(
            s,
            "[pivotwatch] HIGH Acme Ltd: new Bcc: victim@example.orggpj.exe items"
        );
        let long = subject("Acme", &finding(&"x".repeat(10 * MAX_SUBJECT)));
        assert!(
            long.chars().count() <= MAX_SUBJECT,
            "{} chars",
            long.chars().count()
        );
        assert!(!long.contains('\n') && !long.contains('\r'));
    }

    #[test]
    fn message_id_names_finding_subscriber_installation_and_the_sender_domain() {
        let mut settings = Settings::defaults(None);
        settings.email.from = "pivotwatch <alerts@watch.example>".into();
        let id = finding_message_id(&settings, "0123abcd<>@ x", 42, "desk").expect("id");
        assert_eq!(
            id,
            format!(
                "<finding-42.{}.0123abcdx@watch.example>",
                short_hash("desk")
            )
        );
        let other = finding_message_id(&settings, "0123abcd", 42, "legal").expect("id");
        assert_ne!(id, other, "one Message-ID per subscriber");
        assert_eq!(installation_label("<>@"), "0");
    }

    #[test]
    fn text_and_html_bodies_escape_scraped_text() {
        let f = finding("<script>alert(1)</script> & \u{202E}x\r\ny");
        let text = text_body("Acme", &f);
        assert!(text.contains("<script>alert(1)</script> & x\ny"), "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{202E}'));
        assert_eq!(
            e("<b>\"a\" & 'b'</b>\u{200B}\u{7}"),
            "&lt;b&gt;\"a\" &amp; 'b'&lt;/b&gt;"
        );
        let html = finding_html("Acme", &f, 10);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }
}
