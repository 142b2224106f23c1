//! The status endpoint (`[status] listen`): `/healthz`, `/metrics`
//! (Prometheus text), `/feed.atom` (recent findings) and `/`, an HTML page
//! of sources with their health and recent findings with their changes.
//!
//! Everything scraped is escaped (HTML, XML) after
//! [`crate::text::for_display`] has made bidi, invisible and control
//! characters visible (`<U+202E>`); characters XML cannot carry are
//! dropped; the page loads nothing (`Content-Security-Policy:
//! default-src 'none'`). Listen on 127.0.0.1 (or behind a reverse proxy
//! with authentication): findings are sensitive.
//!
//! **Boundary:** reads the store and the running configuration; writes
//! nothing.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::Shared;
use super::metrics::Gauges;
use crate::record::{CheckStatus, Finding};
use crate::store::{DaemonSource, SourceState, StoreError};

/// Findings in the Atom feed.
pub const FEED_ENTRIES: usize = 50;
/// Findings on the HTML page.
const PAGE_FINDINGS: usize = 20;

/// The routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/feed.atom", get(feed))
        .with_state(shared)
}

/// One source as the status page and `/metrics` see it.
#[derive(Debug, Clone)]
pub(crate) struct SourceView {
    pub key: String,
    pub url: String,
    pub schedule: String,
    pub state: Option<SourceState>,
    pub daemon: Option<DaemonSource>,
}

impl SourceView {
    /// `ok`, `failing`, `broken` or `unchecked`.
    pub(crate) fn health(&self, threshold: u32) -> &'static str {
        match &self.state {
            None => "unchecked",
            Some(s) if s.last_status.is_none() => "unchecked",
            Some(s) if s.consecutive_failures >= threshold => "broken",
            Some(s) if s.consecutive_failures > 0 => "failing",
            Some(_) => "ok",
        }
    }
}

/// [`crate::store::blocking`], its error as the endpoint's response.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    crate::store::blocking(f)
        .await
        .map_err(|e| error(crate::text::chain(&e)))
}

fn error(msg: String) -> Response {
    tracing::error!(error = %msg, "Status endpoint cannot read the store.");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("store error: {msg}\n"),
    )
        .into_response()
}

pub(crate) fn sources(shared: &Shared) -> Result<Vec<SourceView>, StoreError> {
    let config = shared.config();
    let mut out = Vec::new();
    for w in &config.watchlists {
        for e in &w.entities {
            for s in &e.sources {
                let key = s.key();
                out.push(SourceView {
                    url: s.url.to_string(),
                    schedule: format!("{} ({})", s.schedule.as_str(), w.timezone.name()),
                    state: shared.store.source_state(&key)?,
                    daemon: shared.store.daemon_source(&key)?,
                    key,
                });
            }
        }
    }
    Ok(out)
}

fn recent_findings(shared: &Shared, n: usize) -> Result<Vec<Finding>, StoreError> {
    shared.store.newest_findings(n)
}

/// How long the store's counts are reused before they are read again.
const STORE_STATS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The store's counts, read at most every [`STORE_STATS_TTL`] (they walk
/// the snapshot and body trees). Call on the blocking pool.
fn store_stats(shared: &Shared) -> Result<crate::store::StoreStats, StoreError> {
    let mut cached = shared
        .store_stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, s)) = &*cached
        && at.elapsed() < STORE_STATS_TTL
    {
        return Ok(s.clone());
    }
    let s = shared.store.stats()?;
    *cached = Some((tokio::time::Instant::now(), s.clone()));
    Ok(s)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let age = shared.heartbeat_age();
    let ok = age <= super::HEARTBEAT_STALE;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "stalled" },
        "scheduler_heartbeat_age_seconds": age.as_secs(),
        "checks_in_flight": shared.metrics.checks_in_flight(),
        "sources": shared.config().sources().count(),
        "started_at": shared.started.to_rfc3339(),
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.clone();
    let gauges = blocking(move || {
        let outbox = s.store.outbox_all()?;
        let dead = outbox.iter().filter(|d| d.dead).count() as u64;
        let threshold = s.config().settings.daemon.failure_threshold;
        let mut g = Gauges {
            outbox_pending: outbox.len() as u64 - dead,
            outbox_dead: dead,
            store: store_stats(&s)?,
            ..Gauges::default()
        };
        for v in sources(&s)? {
            *g.sources.entry(v.health(threshold)).or_default() += 1;
        }
        Ok(g)
    })
    .await;
    match gauges {
        Ok(g) => (
            [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
            shared.metrics.render(&g),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn feed(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.clone();
    let findings = match blocking(move || recent_findings(&s, FEED_ENTRIES)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let config = shared.config();
    let name = |f: &Finding| {
        config
            .entity(&f.entity)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| f.entity.clone())
    };
    match atom(
        &findings,
        &name,
        shared.started,
        shared.store.installation_id(),
    ) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %crate::text::chain(&e), "Status endpoint cannot write the feed.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Renders findings (newest first) as an Atom 1.0 feed (RFC 4287), with
/// `atom_syndication` (which escapes for XML). The feed and entry ids carry
/// `installation` (the store's [`crate::store::Store::installation_id`]):
/// finding ids start again in a new store, and a feed reader must not take
/// a new store's finding for an entry it already has.
pub(crate) fn atom(
    findings: &[Finding],
    entity_name: &dyn Fn(&Finding) -> String,
    fallback_updated: DateTime<Utc>,
    installation: &str,
) -> Result<String, atom_syndication::Error> {
    use atom_syndication::{Category, Content, Entry, Feed, Generator, Person, Text};
    let updated = findings
        .iter()
        .map(|f| f.created_at)
        .max()
        .unwrap_or(fallback_updated);
    let inst = shown(installation);
    let category = |term: String, label: &str| Category {
        term,
        scheme: None,
        label: Some(label.to_string()),
    };
    let entries = findings.iter().map(|f| {
        let name = entity_name(f);
        let title = format!(
            "[{}] {}: {}",
            f.severity.as_str().to_uppercase(),
            name,
            f.summary
        );
        let mut content = format!(
            "{}\n\nEntity: {} ({})\nWatchlist: {}\nSource: {}\nRule: {}\nSeverity: {}\nURL: {}\n",
            f.summary, name, f.entity, f.watchlist, f.source, f.rule, f.severity, f.evidence.url
        );
        if let Some(s) = f.evidence.snapshot {
            let _ = writeln!(content, "Snapshot: {s}");
        }
        if !f.explanation.is_empty() {
            let _ = write!(content, "\n{}\n", f.explanation);
        }
        if !f.evidence.changes.is_empty() {
            content.push_str("\nChanges:\n");
            for c in &f.evidence.changes {
                let _ = writeln!(content, "- {}", c.describe());
            }
        }
        Entry {
            id: format!(
                "urn:pivotwatch:{inst}:finding:{}:{}",
                shown(&f.entity),
                f.id
            ),
            title: Text::plain(shown(&title)),
            updated: f.created_at.fixed_offset(),
            published: Some(f.created_at.fixed_offset()),
            categories: vec![
                category(f.severity.as_str().to_string(), "severity"),
                category(shown(&f.rule), "rule"),
            ],
            summary: Some(Text::plain(shown(&f.summary))),
            content: Some(Content {
                value: Some(shown(&content)),
                content_type: Some("text".to_string()),
                ..Content::default()
            }),
            ..Entry::default()
        }
    });
    let feed = Feed {
        title: Text::plain("pivotwatch findings"),
        id: format!("urn:pivotwatch:{inst}:findings"),
        updated: updated.fixed_offset(),
        authors: vec![Person {
            name: "pivotwatch".to_string(),
            ..Person::default()
        }],
        generator: Some(Generator {
            value: "pivotwatch".to_string(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
        entries: entries.collect(),
        ..Feed::default()
    };
    let xml = feed.write_to(Vec::new())?;
    // The writer is given only `String`s and writes UTF-8.
    Ok(String::from_utf8_lossy(&xml).into_owned())
}

/// Scraped text for the feed: unsafe characters made visible
/// ([`crate::text::for_display`]), then the characters XML 1.0 cannot
/// carry dropped (the remaining control characters other than tab and
/// line feed, U+FFFE, U+FFFF). Escaping is the feed writer's.
fn shown(s: &str) -> String {
    crate::text::for_display(s)
        .chars()
        .filter(|&c| {
            !(((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
                || c == '\u{FFFE}'
                || c == '\u{FFFF}')
        })
        .collect()
}

/// Text for the HTML page: unsafe characters made visible, then escaped.
fn h(s: &str) -> String {
    html_escape::encode_text(&crate::text::for_display(s)).into_owned()
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.clone();
    let data = blocking(move || {
        Ok((
            sources(&s)?,
            recent_findings(&s, PAGE_FINDINGS)?,
            store_stats(&s)?,
        ))
    })
    .await;
    let (views, findings, stats) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let config = shared.config();
    let threshold = config.settings.daemon.failure_threshold;
    let mut p = String::new();
    p.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>pivotwatch</title><style>",
    );
    p.push_str("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}.broken{background:#fdd}.failing{background:#ffd}.unchecked{color:#777}small{color:#555}");
    p.push_str("</style></head><body>");
    let _ = write!(
        p,
        "<h1>pivotwatch</h1><p>{} sources in {} watchlist(s); running since {}; {} check(s) in flight. \
         <a href=\"/metrics\">metrics</a> · <a href=\"/feed.atom\">findings feed</a></p>",
        views.len(),
        config.watchlists.len(),
        time(Some(shared.started)),
        shared.metrics.checks_in_flight()
    );
    let _ = write!(
        p,
        "<p>Store: {} snapshot(s), {} stored bodies ({}), {} finding(s), {} on disk.</p>",
        stats.snapshots,
        stats.blobs,
        bytesize::ByteSize(stats.blob_bytes),
        stats.findings,
        bytesize::ByteSize(stats.disk_bytes)
    );
    p.push_str("<h2>Sources</h2><table><tr><th>source</th><th>health</th><th>last check</th><th>status</th><th>failures</th><th>next check</th><th>schedule</th><th>last error</th></tr>");
    for v in &views {
        let health = v.health(threshold);
        let st = v.state.clone().unwrap_or_default();
        let _ = write!(
            p,
            "<tr class=\"{health}\"><td>{}<br><small>{}</small></td><td>{health}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h(&v.key),
            h(&v.url),
            time(st.last_check),
            st.last_status
                .map(|s: CheckStatus| s.to_string())
                .unwrap_or_else(|| "-".into()),
            st.consecutive_failures,
            time(v.daemon.as_ref().and_then(|d| d.next_due)),
            h(&v.schedule),
            h(st.last_error.as_deref().unwrap_or("")),
        );
    }
    p.push_str("</table><h2>Recent findings</h2>");
    if findings.is_empty() {
        p.push_str("<p>None yet.</p>");
    }
    for f in &findings {
        let name = config
            .entity(&f.entity)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| f.entity.clone());
        let _ = write!(
            p,
            "<h3>[{}] {}: {}</h3><p><small>finding {} · {} · rule {} · source {} · {}</small></p>",
            h(&f.severity.as_str().to_uppercase()),
            h(&name),
            h(&f.summary),
            f.id,
            time(Some(f.created_at)),
            h(&f.rule),
            h(&f.source),
            h(&f.evidence.url)
        );
        let _ = write!(
            p,
            "<p><small>evidence: <code>{}</code></small></p>",
            h(&f.evidence_command())
        );
        if !f.evidence.changes.is_empty() {
            p.push_str("<ul>");
            for c in &f.evidence.changes {
                let _ = write!(p, "<li>{}</li>", h(&c.describe()));
            }
            p.push_str("</ul>");
        }
    }
    p.push_str("</body></html>");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        p,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadOptions};
    use crate::store::{Commit, Store};
    use std::str::FromStr;
    use std::sync::RwLock;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    const WATCHLIST: &str = r##"
[watchlist]
name = "test"

[[entity]]
id = "acme"
name = "Acme Recycling"
activity = ["NACE:46.77"]

[[entity.source]]
id = "shop"
kind = "catalogue"
url = "http://127.0.0.1:9/shop"
allow_private_addresses = true
[entity.source.items]
row = "#products tr"
name = "td.n"
"##;

    /// A store at `dir/state` holding one finding whose summary carries a
    /// right-to-left override, and the configuration naming its entity.
    fn fixture(dir: &std::path::Path) -> (Arc<Config>, Store) {
        std::fs::create_dir_all(dir.join("watchlists")).expect("mkdir");
        std::fs::write(
            dir.join("pivotwatch.toml"),
            "[store]\npath = \"state\"\n[email]\nfrom = \"alerts@pivotwatch.test\"\n",
        )
        .expect("settings");
        std::fs::write(dir.join("watchlists/test.toml"), WATCHLIST).expect("watchlist");
        let config = Config::load(&LoadOptions {
            config: Some(dir.join("pivotwatch.toml")),
            watchlists: Some(dir.join("watchlists")),
            state_dir: None,
            check_address: None,
        })
        .expect("config");
        let store = Store::open(&dir.join("state")).expect("store");
        let finding: Finding = serde_json::from_value(serde_json::json!({
            "id": 0, "entity": "acme", "source": "shop", "watchlist": "test",
            "rule": "items_added", "severity": "high",
            "summary": "new item Atlas\u{202E}gpj.exe\u{1b}[31m",
            "evidence": { "url": "http://127.0.0.1:9/shop" },
            "dedup_key": "status-test", "created_at": Utc::now(),
        }))
        .expect("finding JSON");
        store
            .commit(Commit {
                source: "acme/shop".into(),
                state: SourceState::default(),
                snapshot: None,
                findings: vec![finding],
                deliveries: vec![vec![]],
            })
            .expect("commit");
        (Arc::new(config), store)
    }

    /// Serves the router on a loopback port and GETs `path` (HTTP/1.0).
    async fn get(config: Arc<Config>, store: Store, path: &str) -> String {
        let shared = Arc::new(Shared {
            config: RwLock::new(config),
            store,
            metrics: Arc::default(),
            started: Utc::now(),
            base: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            store_stats: std::sync::Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(shared)).await;
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut raw = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            c.read_to_string(&mut raw),
        )
        .await
        .expect("an answer within 30 s")
        .expect("read");
        server.abort();
        let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_string()
    }

    #[tokio::test]
    async fn the_page_names_the_command_that_writes_each_findings_evidence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, store) = fixture(dir.path());
        let id = store.findings().expect("findings")[0].id;
        let page = get(config, store, "/").await;
        assert!(
            page.contains(&format!(
                "<code>pivotwatch evidence finding:{id} --out finding-{id}.zip</code>"
            )),
            "{page}"
        );
    }

    #[tokio::test]
    async fn metrics_and_the_page_show_the_stores_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, store) = fixture(dir.path());
        let text = get(config.clone(), store.clone(), "/metrics").await;
        let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_string())).collect();
        let parsed = prometheus_parse::Scrape::parse(lines.into_iter()).expect("Prometheus text");
        let value = |name: &str| {
            parsed
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) => v,
                    _ => -1.0,
                })
        };
        assert_eq!(value("pivotwatch_store_findings"), Some(1.0), "{text}");
        assert_eq!(value("pivotwatch_store_snapshots"), Some(0.0), "{text}");
        assert_eq!(value("pivotwatch_store_bodies"), Some(0.0), "{text}");
        assert!(
            value("pivotwatch_store_disk_bytes").is_some_and(|v| v > 0.0),
            "{text}"
        );
        let page = get(config, store, "/").await;
        assert!(
            page.contains("Store: 0 snapshot(s), 0 stored bodies"),
            "{page}"
        );
        assert!(page.contains("1 finding(s)"), "{page}");
    }

    #[tokio::test]
    async fn page_and_feed_show_bidi_and_control_characters_escaped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, store) = fixture(dir.path());
        let page = get(config.clone(), store.clone(), "/").await;
        assert!(
            page.contains("new item Atlas&lt;U+202E&gt;gpj.exe&lt;U+001B&gt;[31m"),
            "{page}"
        );
        assert!(
            !page.contains('\u{202E}') && !page.contains('\u{1b}'),
            "{page}"
        );
        let feed = get(config, store.clone(), "/feed.atom").await;
        assert!(!feed.contains('\u{202E}'), "{feed}");
        let parsed = atom_syndication::Feed::from_str(&feed).expect("Atom XML");
        let entry = &parsed.entries()[0];
        assert_eq!(
            entry.title().as_str(),
            "[HIGH] Acme Recycling: new item Atlas<U+202E>gpj.exe<U+001B>[31m"
        );
        assert_eq!(
            entry.summary().map(|s| s.as_str()),
            Some("new item Atlas<U+202E>gpj.exe<U+001B>[31m")
        );
        // The store (and so JSON output) keeps the text exactly.
        assert_eq!(
            store.findings().expect("findings")[0].summary,
            "new item Atlas\u{202E}gpj.exe\u{1b}[31m"
        );
    }

    #[tokio::test]
    async fn atom_ids_differ_across_stores_and_stay_within_one() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (config_a, store_a) = fixture(a.path());
        let (config_b, store_b) = fixture(b.path());
        let ids = |xml: &str| {
            let f = atom_syndication::Feed::from_str(xml).expect("Atom XML");
            let entries: Vec<String> = f.entries().iter().map(|e| e.id().to_string()).collect();
            (f.id().to_string(), entries)
        };
        let (feed_a, entries_a) = ids(&get(config_a.clone(), store_a.clone(), "/feed.atom").await);
        let (feed_b, entries_b) = ids(&get(config_b, store_b.clone(), "/feed.atom").await);
        assert_eq!(
            store_a.findings().expect("a")[0].id,
            store_b.findings().expect("b")[0].id,
            "the same scenario gives the same finding id in both stores"
        );
        assert_ne!(feed_a, feed_b);
        assert_eq!(entries_a.len(), 1);
        assert_ne!(entries_a, entries_b);
        assert!(
            entries_a[0].contains(store_a.installation_id()),
            "{entries_a:?}"
        );
        drop(store_a);
        let reopened = Store::open(&a.path().join("state")).expect("reopen");
        let (again, entries_again) = ids(&get(config_a, reopened, "/feed.atom").await);
        assert_eq!(
            (again, entries_again),
            (feed_a, entries_a),
            "stable across a restart"
        );
    }

    #[test]
    fn feed_escapes_and_drops_what_xml_cannot_carry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, store) = fixture(dir.path());
        let mut f = store.findings().expect("findings").remove(0);
        f.summary = "a<b>&\"'\u{0}\u{1b}\u{FFFF}\tz</summary>".into();
        let xml = atom(&[f], &|_| "Acme".into(), Utc::now(), "0123").expect("feed");
        assert!(!xml.contains('\u{FFFF}') && !xml.contains('\u{0}'), "{xml}");
        let parsed = atom_syndication::Feed::from_str(&xml).expect("Atom XML");
        assert_eq!(
            parsed.entries()[0].summary().map(|s| s.as_str()),
            Some("a<b>&\"'<U+0000><U+001B>\tz</summary>")
        );
    }
}
