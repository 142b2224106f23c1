//! Watchlist files (`watchlists/NAME.toml`): raw serde shapes, then
//! validation into compiled [`Watchlist`]s with every error located.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use url::Url;

use super::diag::Sink;
use super::{Entity, Source, SourceKind, Watchlist};
use crate::detect::{BUILTIN_RULES, CustomRule, CustomTarget, RuleConfig, RuleOverride};
use crate::extract::{
    Column, ExtractSpec, HtmlField, HtmlItems, HtmlSpec, JsonField, JsonItems, JsonSpec,
    check_pointer, compile_selector,
};
use crate::record::Severity;
use crate::schedule::Schedule;

/// Shares what many sources repeat, across every file of one load: a
/// selector compiled once per distinct text, and one [`ExtractSpec`] per
/// distinct extraction spec (a registry's 10 000 records all use the same
/// selectors). At 100k sources this is most of a loaded configuration's
/// memory (BENCHMARKS.md, "Memory").
#[derive(Default)]
pub(crate) struct Interner {
    selectors: HashMap<String, scraper::Selector>,
    specs: HashMap<String, Arc<ExtractSpec>>,
}

impl Interner {
    pub(super) fn field(
        &mut self,
        sel: &str,
        attr: Option<String>,
        all: bool,
    ) -> Result<HtmlField, String> {
        let selector = match self.selectors.get(sel) {
            Some(c) => c.clone(),
            None => {
                let c = compile_selector(sel)?;
                self.selectors.insert(sel.to_string(), c.clone());
                c
            }
        };
        Ok(HtmlField {
            source: sel.to_string(),
            selector,
            attr,
            all,
        })
    }

    fn spec(&mut self, spec: ExtractSpec) -> Arc<ExtractSpec> {
        let key = spec_key(&spec);
        self.specs
            .entry(key)
            .or_insert_with(|| Arc::new(spec.prepared()))
            .clone()
    }
}

/// Everything that makes two specs extract the same record, as text.
fn spec_key(spec: &ExtractSpec) -> String {
    use std::fmt::Write;
    let mut k = String::new();
    let field = |k: &mut String, f: &HtmlField| {
        let _ = write!(k, "{:?}/{:?}/{}", f.source, f.attr, f.all);
    };
    match spec {
        ExtractSpec::Json(j) => {
            let _ = write!(k, "json:{j:?}");
        }
        ExtractSpec::Html(h) => {
            k.push_str("html:");
            for (name, f) in &h.fields {
                let _ = write!(k, "f{name:?}=");
                field(&mut k, f);
                k.push(';');
            }
            if let Some(i) = &h.items {
                k.push_str("rows=");
                field(&mut k, &i.row);
                for (c, f) in &i.columns {
                    let _ = write!(k, ";c{:?}=", c.name());
                    field(&mut k, f);
                }
            }
            if let Some(n) = &h.next_page {
                k.push_str(";next=");
                field(&mut k, n);
            }
            let _ = write!(k, ";max={}", h.max_pages);
        }
    }
    k
}

/// Default schedule for sources that name none: every six hours.
pub const DEFAULT_SCHEDULE: &str = "0 */6 * * *";
/// Default page cap for paginated catalogues.
pub const DEFAULT_MAX_PAGES: u32 = 10;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    maintainers: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    id: Spanned<String>,
    name: Spanned<String>,
    #[serde(default)]
    aliases: Vec<String>,
    jurisdiction: Option<String>,
    #[serde(default)]
    identifiers: BTreeMap<String, String>,
    #[serde(default)]
    activity: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum RawFormat {
    #[default]
    Html,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: Spanned<String>,
    kind: Option<SourceKind>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    format: RawFormat,
    adapter: Option<Spanned<String>>,
    company_number: Option<Spanned<String>>,
    lei: Option<Spanned<String>>,
    jurisdiction: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    allow_private_addresses: Option<bool>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, Spanned<RawField>>,
    items: Option<Spanned<RawItems>>,
    // kind = "site" only (crate::site).
    max_pages: Option<Spanned<u32>>,
    max_depth: Option<Spanned<u32>>,
    include: Option<Vec<Spanned<String>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItems {
    row: Spanned<String>,
    name: Option<Spanned<RawField>>,
    manufacturer: Option<Spanned<RawField>>,
    part_number: Option<Spanned<RawField>>,
    price: Option<Spanned<RawField>>,
    link: Option<Spanned<RawField>>,
    #[serde(default)]
    columns: BTreeMap<Spanned<String>, Spanned<RawField>>,
    next_page: Option<Spanned<RawField>>,
    max_pages: Option<Spanned<u32>>,
}

/// A field: a bare selector/pointer string, or a table.
#[derive(Debug)]
enum RawField {
    Short(String),
    Full(RawFieldTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFieldTable {
    selector: Option<String>,
    pointer: Option<String>,
    attr: Option<String>,
    #[serde(default)]
    all: bool,
}

impl<'de> Deserialize<'de> for RawField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a selector string, or a table like { selector = \"a.site\", attr = \"href\", all = true }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawField, E> {
                Ok(RawField::Short(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawField, A::Error> {
                RawFieldTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawField::Full)
            }
        }
        d.deserialize_any(V)
    }
}

fn de<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    sink: &mut Sink<'_>,
    what: &str,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(toml::de::ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = e.message().trim().to_string();
            sink.error(Some(e.span().unwrap_or(span)), format!("{what}: {msg}"));
            None
        }
    }
}

/// Records `id` in `seen`; an error at it when it was there already.
fn once_each(
    seen: &mut BTreeSet<String>,
    id: &Spanned<String>,
    sink: &mut Sink<'_>,
    message: impl FnOnce() -> String,
) {
    if !seen.insert(id.get_ref().clone()) {
        sink.error(Some(id.span()), message());
    }
}

/// Valid ids: letters, digits, `-`, `_`, `.`; no `/` (ids are joined as
/// `entity/source` on the command line).
fn check_id(id: &Spanned<String>, what: &str, sink: &mut Sink<'_>) -> bool {
    let s = id.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        sink.error(
            Some(id.span()),
            format!("{what} id {s:?} must be 1-100 characters of letters, digits, '-', '_' or '.'"),
        );
    }
    ok
}

/// Parses and validates one watchlist file. Every error goes to `sink`;
/// the caller must not use a watchlist whose file had any (a broken
/// watchlist never loads half-way). What did parse is still returned, so
/// that ids and names can be checked across files; `None` only for a
/// TOML syntax error. `allow_private` is `[http] allow_private_addresses`
/// (`None` when the settings did not load: the private-address check is
/// then left out).
///
/// A large file is parsed in parts (`chunks.rs`): the same tree, the same
/// errors, without holding toml's whole tree of it (about 24 times the
/// text). A part with a syntax error has the file parsed whole, so that
/// syntax errors are reported exactly as a whole parse reports them.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    sink: &mut Sink<'_>,
    interner: &mut Interner,
    allow_private: Option<bool>,
) -> Option<Watchlist> {
    parse_in_parts_of(
        path,
        text,
        sink,
        interner,
        allow_private,
        super::chunks::PART_BYTES,
    )
}

/// [`parse`], with parts of about `part_bytes`.
fn parse_in_parts_of(
    path: &Path,
    text: &str,
    sink: &mut Sink<'_>,
    interner: &mut Interner,
    allow_private: Option<bool>,
    part_bytes: usize,
) -> Option<Watchlist> {
    let before = sink.out.len();
    if let Some(parts) = super::chunks::parts(text, part_bytes)
        && parts.len() > 1
    {
        match parse_parts(path, text, &parts, sink, interner, allow_private) {
            Ok(w) => return w,
            Err(Reparse) => sink.out.truncate(before),
        }
    }
    let whole = 0..text.len();
    parse_parts(
        path,
        text,
        std::slice::from_ref(&whole),
        sink,
        interner,
        allow_private,
    )
    .unwrap_or(None)
}

/// A part of a file that was cut in parts had a syntax error.
struct Reparse;

/// [`parse`] of `text` cut into `parts` (see `chunks::parts`; one part is
/// the whole file). `Err` only when there are several parts and one has a
/// syntax error.
fn parse_parts(
    path: &Path,
    text: &str,
    parts: &[std::ops::Range<usize>],
    sink: &mut Sink<'_>,
    interner: &mut Interner,
    allow_private: Option<bool>,
) -> Result<Option<Watchlist>, Reparse> {
    let before = sink.out.len();
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    let (root, errors) = DeTable::parse_recoverable(&text[first.clone()]);
    if !errors.is_empty() {
        if parts.len() > 1 {
            return Err(Reparse);
        }
        for e in &errors {
            sink.toml(e, "TOML syntax error");
        }
        return Ok(None);
    }
    let mut root = root.into_inner();
    let mut meta = RawMeta::default();
    let mut raw_entities = Vec::new();
    let mut overrides = BTreeMap::new();
    let mut customs = Vec::new();
    for (key, value) in std::mem::take(&mut root) {
        match key.get_ref().as_ref() {
            "watchlist" => {
                if let Some(m) = de::<RawMeta>(value, sink, "[watchlist]") {
                    meta = m;
                }
            }
            "rules" => {
                if let Some(r) = de::<BTreeMap<Spanned<String>, Spanned<RawRuleOverride>>>(value, sink, "[rules]") {
                    overrides = r;
                }
            }
            "rule" => {
                if let Some(r) = de::<Vec<Spanned<RawCustomRule>>>(value, sink, "[[rule]]") {
                    customs = r;
                }
            }
            "entity" => match value.into_inner() {
                DeValue::Array(arr) => raw_entities.extend(arr),
                _ => sink.error(Some(key.span()), "`entity` must be an array of tables: write [[entity]]"),
            },
            other => sink.error(
                Some(key.span()),
                format!("unknown top-level key `{other}`; a watchlist has [watchlist], [rules.ID], [[rule]] and [[entity]] tables"),
            ),
        }
    }

    let name = match &meta.name {
        Some(n) => n.get_ref().clone(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let timezone = match &meta.timezone {
        None => chrono_tz::UTC,
        Some(tz) => tz.get_ref().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            sink.error(
                Some(tz.span()),
                format!("unknown timezone {:?}; use an IANA name such as \"Africa/Casablanca\" or \"UTC\"", tz.get_ref()),
            );
            chrono_tz::UTC
        }),
    };
    let default_schedule = match &meta.schedule {
        None => Schedule::parse(DEFAULT_SCHEDULE).ok(),
        Some(s) => Schedule::parse(s.get_ref())
            .map_err(|e| sink.error(Some(s.span()), e))
            .ok(),
    };
    for m in &meta.maintainers {
        sink.address(m.span(), m.get_ref());
    }

    let rules = compile_rules(&overrides, &customs, sink);
    let mut entities = Vec::new();
    let mut entity_ids: BTreeSet<String> = BTreeSet::new();
    let mut add = |raw_entities: Vec<Spanned<DeValue<'_>>>, sink: &mut Sink<'_>| {
        for ent in raw_entities {
            let span = ent.span();
            let mut table = match ent.into_inner() {
                DeValue::Table(t) => t,
                _ => {
                    sink.error(Some(span), "each [[entity]] must be a table");
                    continue;
                }
            };
            let sources_val = table.remove("source");
            let Some(raw) = de::<RawEntity>(
                Spanned::new(span.clone(), DeValue::Table(table)),
                sink,
                "[[entity]]",
            ) else {
                continue;
            };
            check_id(&raw.id, "entity", sink);
            once_each(&mut entity_ids, &raw.id, sink, || {
                format!(
                    "duplicate entity id {:?} in this watchlist",
                    raw.id.get_ref()
                )
            });
            for a in &raw.activity {
                let s = a.get_ref();
                match s.split_once(':') {
                    Some((scheme, code)) if !scheme.trim().is_empty() && !code.trim().is_empty() => {}
                    _ => sink.error(
                        Some(a.span()),
                        format!("activity {s:?} must be SCHEME:CODE, e.g. \"NACE:46.77\", \"SIC:46770\", \"ISIC:4669\" or \"NMA:46.77\""),
                    ),
                }
            }
            let mut sources = Vec::new();
            let mut source_ids: BTreeSet<String> = BTreeSet::new();
            let raw_sources = match sources_val.map(Spanned::into_inner) {
                None => Vec::new(),
                Some(DeValue::Array(a)) => a.into_iter().collect(),
                Some(_) => {
                    sink.error(
                        Some(raw.id.span()),
                        "`source` must be an array of tables: write [[entity.source]]",
                    );
                    Vec::new()
                }
            };
            for sv in raw_sources {
                let Some(rs) = de::<RawSource>(sv, sink, "[[entity.source]]") else {
                    continue;
                };
                check_id(&rs.id, "source", sink);
                once_each(&mut source_ids, &rs.id, sink, || {
                    format!(
                        "duplicate source id {:?} in entity {:?}",
                        rs.id.get_ref(),
                        raw.id.get_ref()
                    )
                });
                if let Some(src) = compile_source(
                    &rs,
                    raw.id.get_ref(),
                    default_schedule.as_ref(),
                    sink,
                    interner,
                    allow_private,
                ) {
                    sources.push(src);
                }
            }
            if sources.is_empty() && sink.out.len() == before {
                sink.error(
                    Some(raw.id.span()),
                    format!(
                        "entity {:?} has no sources; add at least one [[entity.source]]",
                        raw.id.get_ref()
                    ),
                );
            }
            sources.shrink_to_fit();
            entities.push(Entity {
                id: raw.id.get_ref().clone(),
                name: raw.name.get_ref().clone(),
                aliases: raw.aliases,
                jurisdiction: raw.jurisdiction,
                identifiers: raw.identifiers,
                activity: raw.activity.into_iter().map(Spanned::into_inner).collect(),
                tags: raw.tags,
                watchlist: name.clone(),
                sources,
            });
        }
    };
    add(raw_entities, sink);
    for part in &parts[1..] {
        let (root, errors) = DeTable::parse_recoverable(&text[part.clone()]);
        if !errors.is_empty() {
            return Err(Reparse);
        }
        // `chunks::parts` starts every later part at an `[[entity]]` header
        // and lets nothing but entity tables into it.
        let mut raw = Vec::new();
        for (key, value) in root.into_inner() {
            match (key.get_ref().as_ref(), value.into_inner()) {
                ("entity", DeValue::Array(arr)) => raw.extend(arr),
                _ => return Err(Reparse),
            }
        }
        sink.set_base(part.start);
        add(raw, sink);
        sink.set_base(0);
    }
    entities.shrink_to_fit();
    Ok(Some(Watchlist {
        name,
        path: path.to_path_buf(),
        description: meta.description,
        maintainers: meta
            .maintainers
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        tags: meta.tags,
        timezone,
        entities,
        rules,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleOverride {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    min_items: Option<usize>,
    min_confidence: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomRule {
    id: Spanned<String>,
    #[serde(default)]
    keywords: Vec<String>,
    pattern: Option<Spanned<String>>,
    on: Option<CustomTarget>,
    #[serde(default)]
    fields: Vec<String>,
    severity: Option<Spanned<String>>,
    description: Option<String>,
}

fn severity(v: &Option<Spanned<String>>, sink: &mut Sink<'_>) -> Option<Severity> {
    let v = v.as_ref()?;
    v.get_ref()
        .parse()
        .map_err(|e: String| sink.error(Some(v.span()), e))
        .ok()
}

fn compile_rules(
    overrides: &BTreeMap<Spanned<String>, Spanned<RawRuleOverride>>,
    customs: &[Spanned<RawCustomRule>],
    sink: &mut Sink<'_>,
) -> RuleConfig {
    let mut cfg = RuleConfig::default();
    for (id, o) in overrides {
        if !BUILTIN_RULES.contains(&id.get_ref().as_str()) {
            sink.error(
                Some(id.span()),
                format!(
                    "unknown rule `{}`; built-in rules are {}",
                    id.get_ref(),
                    BUILTIN_RULES.join(", ")
                ),
            );
            continue;
        }
        let r = o.get_ref();
        let min_confidence = match &r.min_confidence {
            Some(c) if !(0.0..=1.0).contains(c.get_ref()) => {
                sink.error(Some(c.span()), "min_confidence must be between 0 and 1");
                None
            }
            Some(c) => Some(*c.get_ref() as f32),
            None => None,
        };
        cfg.overrides.insert(
            id.get_ref().clone(),
            RuleOverride {
                enabled: r.enabled.unwrap_or(true),
                severity: severity(&r.severity, sink),
                min_items: r.min_items,
                min_confidence,
            },
        );
    }
    let mut seen = BTreeMap::new();
    for c in customs {
        let r = c.get_ref();
        let id = r.id.get_ref();
        if BUILTIN_RULES.contains(&id.as_str()) || seen.insert(id.clone(), ()).is_some() {
            sink.error(
                Some(r.id.span()),
                format!("rule id `{id}` is already used; pick another"),
            );
        }
        let mut alternatives: Vec<String> = r
            .keywords
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| regex::escape(k.trim()))
            .collect();
        if let Some(p) = &r.pattern {
            if let Err(e) = regex::Regex::new(p.get_ref()) {
                sink.error(Some(p.span()), format!("invalid regular expression: {e}"));
                continue;
            }
            alternatives.push(format!("(?:{})", p.get_ref()));
        }
        if alternatives.is_empty() {
            sink.error(Some(c.span()), "a [[rule]] needs `keywords` or a `pattern`");
            continue;
        }
        let Ok(regex) = regex::RegexBuilder::new(&alternatives.join("|"))
            .case_insensitive(true)
            .build()
        else {
            sink.error(
                Some(c.span()),
                "the rule's keywords do not form a valid expression",
            );
            continue;
        };
        cfg.custom.push(CustomRule {
            id: id.clone(),
            regex,
            on: r.on.unwrap_or(CustomTarget::Any),
            fields: r.fields.clone(),
            severity: severity(&r.severity, sink).unwrap_or(Severity::Medium),
            description: r.description.clone(),
        });
    }
    cfg
}

fn compile_source(
    rs: &RawSource,
    entity: &str,
    default_schedule: Option<&Schedule>,
    sink: &mut Sink<'_>,
    interner: &mut Interner,
    allow_private: Option<bool>,
) -> Option<Source> {
    let before = sink.out.len();
    if let Some(adapter) = &rs.adapter {
        return compile_adapter_source(rs, adapter, entity, default_schedule, sink);
    }
    for (key, v) in [
        ("company_number", &rs.company_number),
        ("lei", &rs.lei),
        ("jurisdiction", &rs.jurisdiction),
    ] {
        if let Some(v) = v {
            sink.error(
                Some(v.span()),
                format!("`{key}` is for adapter sources; add adapter = \"companies-house\", \"gleif\" or \"opencorporates\""),
            );
        }
    }
    let Some(raw_url) = &rs.url else {
        sink.error(
            Some(rs.id.span()),
            "a source needs a `url` (or `adapter = \"companies-house\"`, \"gleif\" or \"opencorporates\" with its identifier)",
        );
        return None;
    };
    let url = match Url::parse(raw_url.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if let Some(global) = allow_private
                && !rs.allow_private_addresses.unwrap_or(global)
                && let Some(what) = private_host(&u)
            {
                sink.error(
                    Some(raw_url.span()),
                    format!(
                        "URL {:?} points at {what}, which is never fetched from the public web; \
                         if this is your own network, set allow_private_addresses = true on this \
                         source or in [http] of the settings",
                        raw_url.get_ref()
                    ),
                );
            }
            Some(u)
        }
        Ok(u) => {
            sink.error(
                Some(raw_url.span()),
                format!("URL scheme {:?} is not allowed; only http and https URLs with a host are fetched", u.scheme()),
            );
            None
        }
        Err(e) => {
            sink.error(
                Some(raw_url.span()),
                format!("invalid URL {:?}: {e}", raw_url.get_ref()),
            );
            None
        }
    };
    let schedule = match &rs.schedule {
        Some(s) => Schedule::parse(s.get_ref())
            .map_err(|e| sink.error(Some(s.span()), e))
            .ok(),
        None => default_schedule.cloned(),
    };
    let kind = rs.kind.unwrap_or(if rs.items.is_some() {
        SourceKind::Catalogue
    } else {
        SourceKind::Page
    });
    let site = site_spec(rs, kind, sink);
    if kind != SourceKind::Site && rs.fields.is_empty() && rs.items.is_none() {
        sink.error(
            Some(rs.id.span()),
            "a source needs [entity.source.fields] or [entity.source.items] to know what to extract",
        );
    }
    if kind == SourceKind::Catalogue && rs.items.is_none() {
        sink.error(
            Some(rs.id.span()),
            "kind = \"catalogue\" needs an [entity.source.items] table (row and columns)",
        );
    }
    let spec = match rs.format {
        RawFormat::Html => html_spec(rs, sink, interner).map(ExtractSpec::Html),
        RawFormat::Json => json_spec(rs, sink).map(ExtractSpec::Json),
    };
    if sink.out.len() != before {
        return None;
    }
    Some(Source {
        id: rs.id.get_ref().clone(),
        entity: entity.to_string(),
        kind,
        url: url?,
        schedule: schedule?,
        spec: interner.spec(spec?),
        allow_private_addresses: rs.allow_private_addresses,
        adapter: None,
        site,
    })
}

/// The adapters' names, as a watchlist writes them.
pub const ADAPTERS: &[&str] = &["companies-house", "gleif", "opencorporates"];

/// A Companies House number: 8 characters, digits or two letters then six
/// digits (`01234567`, `SC123456`), upper-cased; an error saying why not.
pub(crate) fn company_number(s: &str) -> Result<String, String> {
    let n = s.trim().to_ascii_uppercase();
    let b = n.as_bytes();
    let ok = b.len() == 8
        && b[2..].iter().all(u8::is_ascii_digit)
        && b[..2].iter().all(u8::is_ascii_alphanumeric);
    if ok {
        Ok(n)
    } else if !n.is_empty() && n.len() < 8 && b.iter().all(u8::is_ascii_digit) {
        Err(format!(
            "company number {s:?} must be 8 characters: write {:?} (keep the leading zeros; a TOML number loses them, so quote it)",
            format!("{n:0>8}")
        ))
    } else {
        Err(format!(
            "company number {s:?} is not a Companies House number: 8 characters, digits or two letters and six digits, e.g. \"01234567\" or \"SC123456\""
        ))
    }
}

/// An LEI (ISO 17442): 20 letters and digits whose ISO 7064 MOD 97-10
/// check holds.
pub(crate) fn lei(s: &str) -> Result<String, String> {
    let l = s.trim().to_ascii_uppercase();
    if l.len() != 20 || !l.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "LEI {s:?} must be 20 letters and digits, e.g. \"HWUPKR0MPOU8FGXBT394\""
        ));
    }
    let mut rem: u32 = 0;
    for c in l.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    if rem == 1 {
        Ok(l)
    } else {
        Err(format!(
            "LEI {s:?} fails its check digits (ISO 17442); check for a typo"
        ))
    }
}

/// An OpenCorporates jurisdiction code: `gb`, `us_ca` …
fn jurisdiction_code(s: &str) -> Result<String, String> {
    let j = s.trim().to_ascii_lowercase();
    let b = j.as_bytes();
    let two = |x: &[u8]| x.len() == 2 && x.iter().all(u8::is_ascii_lowercase);
    let ok = match j.split_once('_') {
        None => two(b),
        Some((c, r)) => {
            two(c.as_bytes()) && !r.is_empty() && r.bytes().all(|c| c.is_ascii_alphanumeric())
        }
    };
    if ok {
        Ok(j)
    } else {
        Err(format!(
            "jurisdiction {s:?} is not an OpenCorporates jurisdiction code such as \"gb\" or \"us_ca\""
        ))
    }
}

/// An adapter and its identifier as the command line gives them
/// (`probe --adapter companies-house 01234567`; OpenCorporates as
/// `gb/01234567`), validated as in a watchlist.
pub fn parse_adapter(name: &str, id: &str) -> Result<crate::model::Adapter, String> {
    use crate::model::Adapter;
    match name {
        "companies-house" => Ok(Adapter::CompaniesHouse {
            company_number: company_number(id)?,
        }),
        "gleif" => Ok(Adapter::Gleif { lei: lei(id)? }),
        "opencorporates" => {
            let Some((j, n)) = id.split_once('/') else {
                return Err(format!(
                    "{id:?}: write JURISDICTION/NUMBER for opencorporates, e.g. gb/01234567"
                ));
            };
            let n = n.trim();
            if n.is_empty() || n.contains('/') {
                return Err(format!(
                    "company number {n:?} must be non-empty, without '/'"
                ));
            }
            Ok(Adapter::OpenCorporates {
                jurisdiction: jurisdiction_code(j)?,
                company_number: n.to_string(),
            })
        }
        other => Err(format!(
            "unknown adapter {other:?}; the adapters are {}",
            ADAPTERS.join(", ")
        )),
    }
}

/// A source with `adapter = "…"`: no `url`, selectors or pointers; the URL
/// is derived from the registry settings once they are known
/// (`Config::load`), here from the public API's.
fn compile_adapter_source(
    rs: &RawSource,
    adapter: &Spanned<String>,
    entity: &str,
    default_schedule: Option<&Schedule>,
    sink: &mut Sink<'_>,
) -> Option<Source> {
    use crate::model::Adapter;
    let before = sink.out.len();
    if let Some(u) = &rs.url {
        sink.error(
            Some(u.span()),
            "an adapter source has no `url`: it is derived from [registries.*] base_url in the settings",
        );
    }
    if !rs.fields.is_empty() || rs.items.is_some() || rs.format != RawFormat::Html {
        sink.error(
            Some(adapter.span()),
            "an adapter source has no `format`, `fields` or `items`: the adapter knows the API",
        );
    }
    if let Some(k) = rs.kind
        && k != SourceKind::Registry
    {
        sink.error(
            Some(adapter.span()),
            "an adapter source is kind = \"registry\"",
        );
    }
    let need = |v: &Option<Spanned<String>>,
                key: &str,
                sink: &mut Sink<'_>|
     -> Option<(String, std::ops::Range<usize>)> {
        match v {
            Some(v) => Some((v.get_ref().clone(), v.span())),
            None => {
                sink.error(
                    Some(adapter.span()),
                    format!("adapter = {:?} needs `{key}`", adapter.get_ref()),
                );
                None
            }
        }
    };
    let check = |r: Result<String, String>, span: std::ops::Range<usize>, sink: &mut Sink<'_>| {
        r.map_err(|e| sink.error(Some(span), e)).ok()
    };
    let unused = |v: &Option<Spanned<String>>, key: &str, sink: &mut Sink<'_>| {
        if let Some(v) = v {
            sink.error(
                Some(v.span()),
                format!("`{key}` is not used by adapter = {:?}", adapter.get_ref()),
            );
        }
    };
    let parsed = match adapter.get_ref().as_str() {
        "companies-house" => {
            unused(&rs.lei, "lei", sink);
            unused(&rs.jurisdiction, "jurisdiction", sink);
            need(&rs.company_number, "company_number", sink)
                .and_then(|(n, sp)| check(company_number(&n), sp, sink))
                .map(|company_number| Adapter::CompaniesHouse { company_number })
        }
        "gleif" => {
            unused(&rs.company_number, "company_number", sink);
            unused(&rs.jurisdiction, "jurisdiction", sink);
            need(&rs.lei, "lei", sink)
                .and_then(|(l, sp)| check(lei(&l), sp, sink))
                .map(|lei| Adapter::Gleif { lei })
        }
        "opencorporates" => {
            unused(&rs.lei, "lei", sink);
            let j = need(&rs.jurisdiction, "jurisdiction", sink)
                .and_then(|(j, sp)| check(jurisdiction_code(&j), sp, sink));
            let n = need(&rs.company_number, "company_number", sink).and_then(|(n, sp)| {
                let t = n.trim().to_string();
                if t.is_empty() || t.contains('/') {
                    sink.error(
                        Some(sp),
                        format!("company number {n:?} must be non-empty, without '/'"),
                    );
                    None
                } else {
                    Some(t)
                }
            });
            match (j, n) {
                (Some(jurisdiction), Some(company_number)) => Some(Adapter::OpenCorporates {
                    jurisdiction,
                    company_number,
                }),
                _ => None,
            }
        }
        other => {
            sink.error(
                Some(adapter.span()),
                format!(
                    "unknown adapter {other:?}; the adapters are {}",
                    ADAPTERS.join(", ")
                ),
            );
            None
        }
    };
    let schedule = match &rs.schedule {
        Some(s) => Schedule::parse(s.get_ref())
            .map_err(|e| sink.error(Some(s.span()), e))
            .ok(),
        None => default_schedule.cloned(),
    };
    if sink.out.len() != before {
        return None;
    }
    let adapter = parsed?;
    Some(Source {
        id: rs.id.get_ref().clone(),
        entity: entity.to_string(),
        kind: SourceKind::Registry,
        url: crate::registry::Registries::default().url(&adapter),
        schedule: schedule?,
        spec: std::sync::Arc::new(ExtractSpec::Json(crate::extract::JsonSpec {
            fields: Vec::new(),
            items: None,
        })),
        allow_private_addresses: rs.allow_private_addresses,
        adapter: Some(adapter),
        site: None,
    })
}

/// The bounds of a `kind = "site"` source; an error for each site key on
/// another kind, and for selectors on a site.
fn site_spec(
    rs: &RawSource,
    kind: SourceKind,
    sink: &mut Sink<'_>,
) -> Option<std::sync::Arc<crate::model::SiteSpec>> {
    use crate::model::{SiteSpec, UrlPattern};
    if kind != SourceKind::Site {
        let spans = [
            rs.max_pages.as_ref().map(|m| ("max_pages", m.span())),
            rs.max_depth.as_ref().map(|m| ("max_depth", m.span())),
            rs.include
                .as_ref()
                .and_then(|v| v.first())
                .map(|m| ("include", m.span())),
            rs.exclude
                .as_ref()
                .and_then(|v| v.first())
                .map(|m| ("exclude", m.span())),
        ];
        for (key, span) in spans.into_iter().flatten() {
            sink.error(
                Some(span),
                format!(
                    "`{key}` is for kind = \"site\" sources (a catalogue's page limit is [entity.source.items] max_pages)"
                ),
            );
        }
        return None;
    }
    if let Some((k, _)) = rs.fields.iter().next() {
        sink.error(
            Some(k.span()),
            "kind = \"site\" needs no selectors: it finds mentions on every page by itself; remove [entity.source.fields] (or use kind = \"page\")",
        );
    }
    if let Some(i) = &rs.items {
        sink.error(
            Some(i.span()),
            "kind = \"site\" needs no selectors: it finds mentions on every page by itself; remove [entity.source.items] (or use kind = \"catalogue\")",
        );
    }
    let mut spec = SiteSpec::default();
    if let Some(m) = &rs.max_pages {
        if *m.get_ref() == 0 {
            sink.error(Some(m.span()), "max_pages must be at least 1");
        }
        spec.max_pages = *m.get_ref();
    }
    if let Some(m) = &rs.max_depth {
        spec.max_depth = *m.get_ref();
    }
    for (list, out) in [
        (&rs.include, &mut spec.include),
        (&rs.exclude, &mut spec.exclude),
    ] {
        for p in list.iter().flatten() {
            match UrlPattern::new(p.get_ref()) {
                Ok(u) => out.push(u),
                Err(e) => sink.error(Some(p.span()), e),
            }
        }
    }
    Some(std::sync::Arc::new(spec))
}

/// What a URL's host is when it is a non-public address written as an IP
/// literal (`http://169.254.169.254/`, `http://[::1]/`, `10.0.0.5`): the
/// same rule the fetch guard applies ([`crate::fetch::is_public_ip`]),
/// caught by `check` instead of at the first fetch. Host names (even
/// `localhost`) are judged by the guard on what they resolve to, at fetch
/// time.
fn private_host(u: &Url) -> Option<String> {
    let ip = match u.host()? {
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    if crate::fetch::is_public_ip(ip) {
        return None;
    }
    let kind = match ip {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => "a loopback address",
        std::net::IpAddr::V4(v4) if v4.is_link_local() => {
            "a link-local address (where cloud metadata services live)"
        }
        std::net::IpAddr::V4(v4) if v4.is_private() => "a private network address",
        std::net::IpAddr::V6(v6) if v6.is_loopback() => "a loopback address",
        std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => {
            "a private (unique local) address"
        }
        std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "a link-local address",
        _ => "a non-public address",
    };
    Some(format!("{kind} ({ip})"))
}

fn html_field(
    f: &Spanned<RawField>,
    sink: &mut Sink<'_>,
    interner: &mut Interner,
) -> Option<HtmlField> {
    let (sel, attr, all) = match f.get_ref() {
        RawField::Short(s) => (s.clone(), None, false),
        RawField::Full(t) => {
            if t.pointer.is_some() {
                sink.error(
                    Some(f.span()),
                    "`pointer` is for format = \"json\" sources; HTML fields use `selector`",
                );
                return None;
            }
            let Some(sel) = &t.selector else {
                sink.error(Some(f.span()), "this field table needs a `selector`");
                return None;
            };
            (sel.clone(), t.attr.clone(), t.all)
        }
    };
    interner
        .field(&sel, attr, all)
        .map_err(|e| sink.error(Some(f.span()), e))
        .ok()
}

fn json_field(f: &Spanned<RawField>, sink: &mut Sink<'_>) -> Option<JsonField> {
    let (pointer, all) = match f.get_ref() {
        RawField::Short(s) => (s.clone(), false),
        RawField::Full(t) => {
            if t.selector.is_some() || t.attr.is_some() {
                sink.error(
                    Some(f.span()),
                    "format = \"json\" fields use `pointer` (and `all`), not `selector` or `attr`",
                );
                return None;
            }
            let Some(p) = &t.pointer else {
                sink.error(Some(f.span()), "this field table needs a `pointer`");
                return None;
            };
            (p.clone(), t.all)
        }
    };
    check_pointer(&pointer)
        .map_err(|e| sink.error(Some(f.span()), e))
        .ok()?;
    Some(JsonField { pointer, all })
}

fn columns(items: &RawItems) -> Vec<(Column, &Spanned<RawField>)> {
    let mut out = Vec::new();
    for (c, f) in [
        (Column::Name, &items.name),
        (Column::Manufacturer, &items.manufacturer),
        (Column::PartNumber, &items.part_number),
        (Column::Price, &items.price),
        (Column::Link, &items.link),
    ] {
        if let Some(f) = f {
            out.push((c, f));
        }
    }
    for (k, f) in &items.columns {
        out.push((Column::Extra(k.get_ref().clone()), f));
    }
    out
}

fn check_item_columns(items: &Spanned<RawItems>, sink: &mut Sink<'_>) {
    let i = items.get_ref();
    if i.name.is_none() && i.part_number.is_none() {
        sink.error(
            Some(items.span()),
            "items need a `name` or a `part_number` column: an item's key is its part number, else its name",
        );
    }
    for k in i.columns.keys() {
        if matches!(
            k.get_ref().as_str(),
            "name" | "manufacturer" | "part_number" | "price" | "link" | "key"
        ) {
            sink.error(
                Some(k.span()),
                format!(
                    "extra column `{}` clashes with a built-in column; rename it",
                    k.get_ref()
                ),
            );
        }
    }
}

fn html_spec(rs: &RawSource, sink: &mut Sink<'_>, interner: &mut Interner) -> Option<HtmlSpec> {
    let before = sink.out.len();
    let mut spec = HtmlSpec {
        max_pages: 1,
        ..HtmlSpec::default()
    };
    for (name, f) in &rs.fields {
        if let Some(h) = html_field(f, sink, interner) {
            spec.fields.push((name.get_ref().clone(), h));
        }
    }
    if let Some(items) = &rs.items {
        check_item_columns(items, sink);
        let i = items.get_ref();
        let row = interner
            .field(i.row.get_ref(), None, true)
            .map_err(|e| sink.error(Some(i.row.span()), e))
            .ok();
        let mut cols = Vec::new();
        for (c, f) in columns(i) {
            if let Some(h) = html_field(f, sink, interner) {
                cols.push((c, h));
            }
        }
        if let Some(n) = &i.next_page {
            spec.next_page = html_field(n, sink, interner);
            spec.max_pages = DEFAULT_MAX_PAGES;
        }
        if let Some(m) = &i.max_pages {
            if *m.get_ref() == 0 {
                sink.error(Some(m.span()), "max_pages must be at least 1");
            }
            spec.max_pages = *m.get_ref();
        }
        if let Some(row) = row {
            spec.items = Some(HtmlItems { row, columns: cols });
        }
    }
    (sink.out.len() == before).then_some(spec)
}

fn json_spec(rs: &RawSource, sink: &mut Sink<'_>) -> Option<JsonSpec> {
    let before = sink.out.len();
    let mut spec = JsonSpec::default();
    for (name, f) in &rs.fields {
        if let Some(j) = json_field(f, sink) {
            spec.fields.push((name.get_ref().clone(), j));
        }
    }
    if let Some(items) = &rs.items {
        check_item_columns(items, sink);
        let i = items.get_ref();
        if let Err(e) = check_pointer(i.row.get_ref()) {
            sink.error(Some(i.row.span()), e);
        }
        if let Some(n) = &i.next_page {
            sink.error(
                Some(n.span()),
                "pagination (next_page) is only supported for HTML sources",
            );
        }
        let mut cols = Vec::new();
        for (c, f) in columns(i) {
            if let Some(j) = json_field(f, sink) {
                cols.push((c, j));
            }
        }
        spec.items = Some(JsonItems {
            row: i.row.get_ref().clone(),
            columns: cols,
        });
    }
    (sink.out.len() == before).then_some(spec)
}

// Unit tests of the watchlist parser (issue 11); loading whole folders is
// tested in tests/it/config.rs and tests/it/cli.rs.
#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `w.toml`: the watchlist and every diagnostic as
    /// `line:col: message`.
    fn parse_str(text: &str) -> (Option<Watchlist>, Vec<String>) {
        let path = Path::new("w.toml");
        let mut sink = Sink::new(path, text);
        let mut interner = Interner::default();
        let wl = parse(path, text, &mut sink, &mut interner, Some(true));
        let diags = sink
            .out
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect();
        (wl, diags)
    }

    /// A watchlist parsed in parts (each entity one) is the watchlist
    /// parsed whole, with the same diagnostics at the same places: errors
    /// in later parts, a syntax error in one (the file is then parsed
    /// whole), and files that cannot be cut.
    #[test]
    fn a_file_parsed_in_parts_is_the_file_parsed_whole() {
        let entity = |i: usize, extra: &str| {
            format!(
                "\n[[entity]]\nid = \"e{i}\"\nname = \"E {i}\"\n{extra}\n[[entity.source]]\nid = \"shop\"\nkind = \"catalogue\"\nurl = \"http://127.0.0.1:9/{i}\"\n[entity.source.items]\nrow = \"tr\"\npart_number = \"td.mpn\"\n"
            )
        };
        let head = "# comment [[entity]]\n[watchlist]\nname = \"w\"\nschedule = \"0 * * * *\"\n\n[rules.activity_changed]\nenabled = false\n";
        let clean: String = std::iter::once(head.to_string())
            .chain(
                (0..40).map(|i| entity(i, "aliases = [\n  \"[[entity]]\",\n'''\n[[entity]]\n''']")),
            )
            .collect();
        let mut faulty = clean.clone();
        faulty.push_str(&entity(40, "activity = [\"no-colon\"]"));
        faulty.push_str(&entity(3, "")); // duplicate id, far from the first
        faulty.push_str(&entity(41, "tags = 7"));
        let syntax = format!(
            "{clean}\n[[entity]]\nid = \"x\nname = 1\n{}",
            entity(42, "")
        );
        let uncut = format!("{clean}\n[rules.items_added]\nenabled = false\n");
        for (what, text) in [
            ("clean", &clean),
            ("faulty", &faulty),
            ("syntax", &syntax),
            ("uncut", &uncut),
        ] {
            let cuts = super::super::chunks::parts(text, 1).map(|p| p.len());
            if what == "uncut" {
                assert_eq!(cuts, None, "{what}: the test file cannot be cut");
            } else {
                assert!(cuts > Some(1), "{what}: the test file is cut in parts");
            }
            let run = |part_bytes: usize| {
                let path = Path::new("w.toml");
                let mut sink = Sink::new(path, text);
                let mut interner = Interner::default();
                let wl =
                    parse_in_parts_of(path, text, &mut sink, &mut interner, Some(true), part_bytes);
                let diags: Vec<String> = sink.out.iter().map(|d| d.to_string()).collect();
                (format!("{wl:?}"), diags)
            };
            let (whole, whole_diags) = run(usize::MAX);
            let (parts, parts_diags) = run(1);
            assert_eq!(parts_diags, whole_diags, "{what}");
            assert_eq!(parts, whole, "{what}");
            match what {
                "clean" | "uncut" => assert!(whole_diags.is_empty(), "{what}: {whole_diags:#?}"),
                _ => assert!(!whole_diags.is_empty(), "{what}"),
            }
        }
        // The faulty file's errors point into its last parts.
        let (_, diags) = parse_str(&faulty);
        let dup = faulty.rfind("id = \"e3\"").expect("dup");
        let line = faulty[..dup].matches('\n').count() + 1;
        assert!(
            diags
                .iter()
                .any(|d| d.starts_with(&format!("{line}:6: duplicate entity id"))),
            "{diags:#?}"
        );
    }

    #[test]
    fn a_repeated_source_id_is_an_error_at_the_second() {
        let src = "[[entity.source]]\nid = \"shop\"\nkind = \"catalogue\"\nurl = \"http://127.0.0.1:9/\"\n[entity.source.items]\nrow = \"tr\"\npart_number = \"td\"\n";
        let text = format!("[[entity]]\nid = \"e\"\nname = \"E\"\n{src}{src}");
        let (_, diags) = parse_str(&text);
        assert_eq!(
            diags,
            ["12:6: duplicate source id \"shop\" in entity \"e\""],
            "{text}"
        );
    }

    #[test]
    fn a_catalogue_watchlist_parses() {
        let text = include_str!("../../tests/fixtures/catalogue.toml")
            .replace("{BASE}", "http://127.0.0.1:9");
        let (wl, diags) = parse_str(&text);
        assert!(diags.is_empty(), "{diags:#?}");
        let wl = wl.expect("watchlist");
        assert_eq!(wl.name, "test");
        assert_eq!(wl.maintainers, ["analyst@example.org"]);
        assert_eq!(wl.entities.len(), 1);
        assert_eq!(wl.entities[0].id, "acme");
        assert_eq!(wl.entities[0].sources.len(), 1);
        assert_eq!(wl.entities[0].sources[0].id, "shop");
    }

    #[test]
    fn the_name_defaults_to_the_file_name() {
        let (wl, diags) = parse_str("[watchlist]\n");
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(wl.expect("watchlist").name, "w");
    }

    #[test]
    fn errors_carry_line_and_col() {
        let (wl, diags) = parse_str("[watchlist\nname = \"b\"\n");
        assert!(wl.is_none(), "a syntax error returns no watchlist");
        assert!(diags.iter().any(|d| d.starts_with("1:")), "{diags:#?}");

        let text = include_str!("../../tests/fixtures/broken.toml");
        let (_, diags) = parse_str(text);
        let second = text.rfind("id = \"dup\"").expect("second dup");
        let line = text[..second].matches('\n').count() + 1;
        let has = |prefix: &str| diags.iter().any(|d| d.starts_with(prefix));
        assert!(
            has(&format!("{line}:6: duplicate entity id \"dup\"")),
            "{diags:#?}"
        );
        assert!(has("4:12: unknown timezone \"Mars/Olympus\""), "{diags:#?}");
        assert!(
            has("3:12: cron expression \"0 30 9 * * Mon-Fri\" has 6 fields"),
            "{diags:#?}"
        );
        assert!(has("14:7: URL scheme \"ftp\" is not allowed"), "{diags:#?}");
        assert!(
            has("16:7: CSS selector \"table tr[\" does not compile"),
            "{diags:#?}"
        );
        assert_eq!(
            diags.len(),
            7,
            "every error of the file, not the first: {diags:#?}"
        );
    }
}
