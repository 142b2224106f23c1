//! The alert email: subject, text and HTML parts, headers.

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use super::AlertError;
use crate::config::{Entity, Settings, Subscriber};
use crate::detect::truncate;
use crate::record::{Change, Finding};
use crate::store::Delivery;

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

/// Removes CR, LF and every other control character, collapses whitespace
/// and bounds the length, so scraped text can never add a header line.
pub fn sanitize_header(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(
        &cleaned.split_whitespace().collect::<Vec<_>>().join(" "),
        max,
    )
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
        200,
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

/// Renders the mail of one finding for one subscriber. The Message-ID
/// depends only on (finding, subscriber): a resend is the same mail.
pub fn render(
    settings: &Settings,
    entity: Option<&Entity>,
    f: &Finding,
    sub: &Subscriber,
    _delivery: &Delivery,
) -> Result<Rendered, AlertError> {
    let from: Mailbox =
        settings.email.from.parse().map_err(|e| {
            AlertError::Build(format!("[email] from {:?}: {e}", settings.email.from))
        })?;
    let entity_name = entity.map(|e| e.name.as_str()).unwrap_or(f.entity.as_str());
    let subject = subject(entity_name, f);
    let sub_tag = &blake3::hash(sub.name.as_bytes()).to_hex()[..12];
    let domain = from.email.domain().to_string();
    let message_id = format!("<finding-{}.{}@{}>", f.id, sub_tag, domain);
    let mut b = Message::builder()
        .from(from.clone())
        .subject(subject.clone())
        .message_id(Some(message_id.clone()))
        .header(ListId(format!(
            "pivotwatch {} <{}.pivotwatch.{}>",
            sanitize_header(&f.watchlist, 60),
            sanitize_list_label(&f.watchlist),
            domain
        )))
        .header(AutoSubmitted("auto-generated".into()))
        .header(PivotwatchFinding(format!("{} {}", f.id, f.rule)));
    for to in &sub.to {
        let mb: Mailbox = to.parse().map_err(|e| {
            AlertError::Build(format!("subscriber {:?} address {to:?}: {e}", sub.name))
        })?;
        b = b.to(mb);
    }
    let text = text_body(entity_name, f);
    let html = html_body(entity_name, f);
    let message = b
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| AlertError::Build(e.to_string()))?;
    Ok(Rendered {
        subject,
        message_id,
        message,
    })
}

fn sanitize_list_label(s: &str) -> String {
    let l: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if l.is_empty() { "watchlist".into() } else { l }
}

/// The plain-text part of an alert.
pub fn text_body(entity_name: &str, f: &Finding) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", f.summary));
    s.push_str(&format!("Entity:    {} ({})\n", entity_name, f.entity));
    s.push_str(&format!("Source:    {}\n", f.source));
    s.push_str(&format!("Watchlist: {}\n", f.watchlist));
    s.push_str(&format!(
        "Rule:      {} (severity {})\n",
        f.rule, f.severity
    ));
    s.push_str(&format!("URL:       {}\n", f.evidence.url));
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
        s.push_str(&format!("{k}: {v}\n"));
    }
    if !f.evidence.changes.is_empty() {
        s.push_str("\nEvidence:\n");
        for c in &f.evidence.changes {
            s.push_str(&format!("  - {}\n", c.describe()));
        }
    }
    if !f.explanation.is_empty() {
        s.push_str(&format!("\nWhy:\n{}\n", f.explanation));
    }
    s.push_str("\n-- \npivotwatch: `pivotwatch diff ");
    s.push_str(&format!(
        "{}/{}` shows the full change.\n",
        f.entity, f.source
    ));
    s
}

fn e(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn html_body(entity_name: &str, f: &Finding) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"font-family:sans-serif\">",
    );
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
    for (k, v) in &f.evidence.facts {
        row(k, e(v));
    }
    h.push_str("</table>");
    let items: Vec<&Change> = f.evidence.changes.iter().collect();
    if !items.is_empty() {
        h.push_str("<h3>Evidence</h3><table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\"><tr><th>change</th><th>what</th><th>before</th><th>after</th></tr>");
        for c in items {
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
    }
    if !f.explanation.is_empty() {
        h.push_str(&format!("<h3>Why</h3><pre>{}</pre>", e(&f.explanation)));
    }
    h.push_str("</body></html>");
    h
}

fn item_cell(i: &crate::record::Item) -> String {
    let mut parts = vec![i.label()];
    if let Some(m) = &i.manufacturer {
        parts.push(format!("by {m}"));
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
