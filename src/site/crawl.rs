//! The walk of one site in one check: the home page, the pages the
//! sitemaps list, then same-site links breadth-first, bounded by
//! `max_pages` and `max_depth`, `exclude`d pages never fetched. Every
//! request goes through the checker's [`Fetcher`] (per-host spacing,
//! `Retry-After`) and, when the checker honours it, robots.txt.
//!
//! Each page is asked with its own validators (conditional GET); a 304 or
//! a body whose hash is the stored one reuses the page's stored scan (a
//! blob under the body hash), so an unchanged page is never parsed again.
//! A changed page's raw body and scan are stored as blobs under its hash
//! (deduplicated). A page that fails or is blocked keeps its previous
//! scan; a page that answers 404 or 410 is gone.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use url::Url;

use super::{PageScan, Scanner, canon, pdf, scan_page, sitemap};
use crate::fetch::robots::{Verdict, sitemaps_in};
use crate::fetch::{Conditional, FetchError, Fetcher, Robots, looks_blocked};
use crate::model::SiteSpec;
use crate::record::ResponseMeta;
use crate::store::{PageValidators, Store, StoreError, blocking, body_hash};

/// Most sitemap files read in one check.
const MAX_SITEMAPS: usize = 10;
/// Version of the stored scans: a new version scans every page again.
const SCAN_VERSION: &str = "site-scan-v1";

/// What the walk needs.
pub(crate) struct Crawler<'a> {
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) robots: Option<&'a Robots>,
    /// Blobs of page bodies and scans (`None`: `probe --site`, nothing kept).
    pub(crate) store: Option<&'a Store>,
    pub(crate) scanner: std::sync::Arc<Scanner>,
}

/// How the home page failed.
#[derive(Debug)]
pub(crate) struct HomeFailure {
    pub(crate) message: String,
    pub(crate) blocked: bool,
    pub(crate) transient: bool,
    pub(crate) retry_after: Option<Duration>,
}

/// What one walk gave.
#[derive(Debug, Default)]
pub(crate) struct Crawl {
    /// Each page's state for the next check.
    pub(crate) pages: Vec<PageValidators>,
    /// Page URL → its scan (pages counted for mentions).
    pub(crate) scans: BTreeMap<String, PageScan>,
    /// Pages read this time (a body or a 304).
    pub(crate) read: usize,
    /// Pages that were parsed (new or changed bodies).
    pub(crate) parsed: usize,
    /// What went wrong on some pages, for the report.
    pub(crate) problems: Vec<String>,
    /// The home page could not be read.
    pub(crate) home: Option<HomeFailure>,
    /// How each body read this time was fetched, the body being the blob
    /// under its hash (`ResponseMeta::body_blob`): the snapshot's evidence.
    pub(crate) responses: Vec<ResponseMeta>,
}

impl Crawl {
    /// One line per page, `URL HASH`: the snapshot's evidence blob, each
    /// page's raw body being the blob under its hash.
    pub(crate) fn manifest(&self) -> Vec<u8> {
        let mut out = String::new();
        for p in &self.pages {
            out.push_str(&p.url);
            out.push(' ');
            out.push_str(p.hash.as_deref().unwrap_or("-"));
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// The URL of the one `SourceState::pages` entry of a site source: its
/// `hash` names the blob holding the page table. An unchanged site
/// rewrites only that entry, never 200 pages of validators.
pub(crate) const PAGE_TABLE: &str = "pivotwatch:site-pages";

/// The page table of a site source's state (the blob its one entry
/// names; an empty table when there is none yet or it cannot be read).
pub(crate) async fn load_pages(
    store: &Store,
    state: &[PageValidators],
) -> Result<Vec<PageValidators>, StoreError> {
    match state {
        [one] if one.url == PAGE_TABLE => {
            let Some(hash) = one.hash.clone() else {
                return Ok(vec![]);
            };
            let store = store.clone();
            let bytes = blocking(move || store.blob(&format!("{PAGE_TABLE}:{hash}"))).await?;
            Ok(bytes
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default())
        }
        other => Ok(other.to_vec()),
    }
}

/// Stores a page table as a blob (deduplicated by hash) and gives the
/// state's one entry naming it.
pub(crate) async fn save_pages(
    store: &Store,
    pages: &[PageValidators],
) -> Result<Vec<PageValidators>, StoreError> {
    let json = serde_json::to_vec(pages).unwrap_or_default();
    let hash = body_hash(&json);
    let store = store.clone();
    let h = hash.clone();
    blocking(move || store.put_blob(&format!("{PAGE_TABLE}:{h}"), &json)).await?;
    Ok(vec![PageValidators {
        url: PAGE_TABLE.to_string(),
        hash: Some(hash),
        ..PageValidators::default()
    }])
}

fn scan_key(hash: &str) -> String {
    format!("{SCAN_VERSION}:{hash}")
}

async fn stored_scan(store: Option<&Store>, hash: &str) -> Result<Option<PageScan>, StoreError> {
    let Some(store) = store else {
        return Ok(None);
    };
    let store = store.clone();
    let key = scan_key(hash);
    let bytes = blocking(move || store.blob(&key)).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

enum Outcome {
    /// Read (a body or a 304): its scan and validators.
    Read {
        scan: PageScan,
        etag: Option<String>,
        last_modified: Option<String>,
        hash: String,
        parsed: bool,
        /// How the body was fetched, when one was (not on a 304).
        evidence: Option<Box<ResponseMeta>>,
    },
    /// 404 / 410.
    Gone,
    /// Not a page to read (an image, a binary).
    Skipped,
    /// Failed or blocked: the previous scan is kept.
    Failed(HomeFailure),
}

impl Crawler<'_> {
    /// Walks the site from `home`.
    pub(crate) async fn crawl(
        &self,
        home: &Url,
        spec: &SiteSpec,
        previous: &[PageValidators],
    ) -> Result<Crawl, StoreError> {
        let mut out = Crawl::default();
        let prev: HashMap<String, &PageValidators> = previous
            .iter()
            .filter_map(|p| Url::parse(&p.url).ok().map(|u| (canon::key(&u), p)))
            .collect();
        let mut queue: VecDeque<(Url, u32)> = VecDeque::new();
        let mut queued: HashSet<String> = HashSet::new();
        let home = canon::resolve(home, home.as_str()).unwrap_or_else(|| home.clone());
        let home_key = canon::key(&home);
        queued.insert(home_key.clone());
        queue.push_back((home.clone(), 0));
        for u in self.sitemap_pages(&home, &mut out.problems).await {
            if queued.insert(canon::key(&u)) {
                queue.push_back((u, 1));
            }
        }
        // Pages known before, reached again even when the page that linked
        // them failed this time.
        let mut known: VecDeque<(Url, u32)> = previous
            .iter()
            .filter_map(|p| Some((Url::parse(&p.url).ok()?, p.depth.unwrap_or(1))))
            .collect();
        let mut fetched = 0u32;
        let mut disallowed = 0usize;
        let mut done: HashSet<String> = HashSet::new();
        // Pages whose absence is real: gone (404/410), disallowed, excluded.
        let mut dropped: HashSet<String> = HashSet::new();
        loop {
            let (url, depth) = match queue.pop_front() {
                Some(x) => x,
                None => match known.pop_front() {
                    Some((u, d)) => {
                        if !queued.insert(canon::key(&u)) {
                            continue;
                        }
                        (u, d)
                    }
                    None => break,
                },
            };
            if fetched >= spec.max_pages {
                break;
            }
            let key = canon::key(&url);
            let is_home = key == home_key;
            let pq = canon::path_and_query(&url);
            if !is_home && spec.exclude.iter().any(|p| p.matches(&pq)) {
                dropped.insert(key);
                continue;
            }
            if let Some(robots) = self.robots {
                match robots.check(self.fetcher, &url).await {
                    Verdict::Allowed => {}
                    v @ Verdict::Disallowed { .. } => {
                        disallowed += 1;
                        dropped.insert(key.clone());
                        if is_home {
                            out.home = Some(HomeFailure {
                                message: v.message(&url).unwrap_or_default(),
                                blocked: true,
                                transient: false,
                                retry_after: None,
                            });
                        }
                        continue;
                    }
                    v @ Verdict::Unreachable { .. } => {
                        let message = v.message(&url).unwrap_or_default();
                        let retry_after = match v {
                            Verdict::Unreachable { retry_after, .. } => retry_after,
                            _ => None,
                        };
                        // Nothing more may be fetched from this site now.
                        out.home = Some(HomeFailure {
                            message,
                            blocked: false,
                            transient: true,
                            retry_after,
                        });
                        break;
                    }
                }
            }
            fetched += 1;
            let old = prev.get(&key).copied();
            match self.page(&url, old).await? {
                Outcome::Read {
                    mut scan,
                    etag,
                    last_modified,
                    hash,
                    parsed,
                    evidence,
                } => {
                    out.read += 1;
                    out.responses.extend(evidence.map(|e| *e));
                    // A page that became a JavaScript shell is not an empty
                    // page: what it showed before stays.
                    if scan.javascript_only
                        && let Some(h) = old.and_then(|p| p.hash.as_deref())
                        && h != hash
                        && let Some(before) = stored_scan(self.store, h).await?
                        && !before.mentions.is_empty()
                    {
                        out.problems.push(format!(
                            "{url}: the page is now only a JavaScript shell; its {} previous mention(s) kept",
                            before.mentions.len()
                        ));
                        scan.mentions = before.mentions;
                        scan.links = before.links;
                    }
                    out.parsed += usize::from(parsed);
                    // rel=canonical to another page already read: a duplicate.
                    let canonical_key = scan
                        .canonical
                        .as_deref()
                        .and_then(|c| Url::parse(c).ok())
                        .map(|c| canon::key(&c));
                    if let Some(ck) = &canonical_key
                        && *ck != key
                        && done.contains(ck)
                    {
                        dropped.insert(key.clone());
                        continue;
                    }
                    done.insert(key.clone());
                    if let Some(ck) = canonical_key {
                        done.insert(ck.clone());
                        queued.insert(ck);
                    }
                    if depth < spec.max_depth {
                        for l in &scan.links {
                            if let Ok(u) = Url::parse(l)
                                && queued.insert(canon::key(&u))
                            {
                                queue.push_back((u, depth + 1));
                            }
                        }
                    }
                    out.pages.push(PageValidators {
                        url: url.to_string(),
                        etag,
                        last_modified,
                        hash: Some(hash),
                        depth: Some(depth),
                        next: None,
                    });
                    let counted = is_home
                        || spec.include.is_empty()
                        || spec.include.iter().any(|p| p.matches(&pq));
                    if counted {
                        out.scans.insert(url.to_string(), scan);
                    }
                }
                Outcome::Gone | Outcome::Skipped => {
                    dropped.insert(key.clone());
                }
                Outcome::Failed(f) => {
                    out.problems.push(format!("{url}: {}", f.message));
                    // Keep what the page showed before.
                    if let Some(p) = old
                        && let Some(h) = &p.hash
                        && let Some(scan) = stored_scan(self.store, h).await?
                    {
                        done.insert(key.clone());
                        out.pages.push((*p).clone());
                        out.scans.insert(url.to_string(), scan);
                    }
                    if is_home {
                        out.home = Some(f);
                    }
                }
            }
        }
        // A known page the walk did not reach this time (`max_pages`, a
        // stop) keeps what it showed: never a removal by itself.
        let mut carried = 0usize;
        for p in previous {
            let Ok(u) = Url::parse(&p.url) else { continue };
            let key = canon::key(&u);
            if done.contains(&key) || dropped.contains(&key) {
                continue;
            }
            if let Some(h) = &p.hash
                && let Some(scan) = stored_scan(self.store, h).await?
            {
                done.insert(key);
                out.pages.push(p.clone());
                out.scans.insert(p.url.clone(), scan);
                carried += 1;
            }
        }
        if carried > 0 {
            out.problems.push(format!(
                "{carried} known page(s) not read this time (max_pages or a stop), their mentions kept"
            ));
        }
        if disallowed > 0 {
            out.problems.push(format!(
                "{disallowed} page(s) not fetched: robots.txt disallows them for this crawler"
            ));
        }
        out.pages.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(out)
    }

    /// Page URLs from robots.txt's `Sitemap:` lines and `/sitemap.xml`
    /// (indexes followed), same site only.
    async fn sitemap_pages(&self, home: &Url, problems: &mut Vec<String>) -> Vec<Url> {
        let site = canon::site_of(home);
        let mut files: VecDeque<(Url, bool)> = VecDeque::new();
        // The politeness cache's copy of robots.txt when there is one
        // (fetched once per check), else a read of our own.
        let listed = match self.robots {
            Some(robots) => robots.sitemaps(self.fetcher, home).await,
            None => match home.join("/robots.txt") {
                Ok(robots_url) => self
                    .fetcher
                    .fetch(&robots_url, &Conditional::default())
                    .await
                    .map(|r| sitemaps_in(&r.body))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            },
        };
        for s in listed {
            if let Some(u) = canon::resolve(home, &s) {
                files.push_back((u, true));
            }
        }
        if let Ok(u) = home.join("/sitemap.xml")
            && !files.iter().any(|(f, _)| f == &u)
        {
            files.push_back((u, false));
        }
        let mut seen: HashSet<Url> = HashSet::new();
        let mut pages = Vec::new();
        while let Some((file, listed)) = files.pop_front() {
            if seen.len() >= MAX_SITEMAPS || !seen.insert(file.clone()) {
                continue;
            }
            if canon::site_of(&file) != site {
                continue;
            }
            let body = match self.fetcher.fetch(&file, &Conditional::default()).await {
                Ok(r) => r.body,
                Err(e) => {
                    if listed {
                        problems.push(format!("sitemap {file}: {}", crate::text::chain(&e)));
                    }
                    continue;
                }
            };
            match sitemap::parse(&body) {
                Ok(s) => {
                    for c in s.children {
                        if let Some(u) = canon::resolve(&file, &c) {
                            files.push_back((u, true));
                        }
                    }
                    for p in s.pages {
                        if let Some(u) = canon::resolve(&file, &p)
                            && canon::site_of(&u) == site
                            && !canon::is_asset(&u)
                        {
                            pages.push(u);
                        }
                    }
                }
                Err(e) => {
                    if listed {
                        problems.push(format!("sitemap {file}: {}", crate::text::chain(&e)));
                    }
                }
            }
        }
        pages
    }

    /// Reads one page: its stored scan when it did not change, else a
    /// fresh scan (stored with its raw body).
    async fn page(&self, url: &Url, old: Option<&PageValidators>) -> Result<Outcome, StoreError> {
        let old_hash = old.and_then(|p| p.hash.clone());
        let cond = match (old, &old_hash) {
            (Some(p), Some(_)) => Conditional {
                etag: p.etag.clone(),
                last_modified: p.last_modified.clone(),
            },
            _ => Conditional::default(),
        };
        let mut resp = match self.fetcher.fetch(url, &cond).await {
            Ok(r) => r,
            Err(e) => return Ok(failed(&e)),
        };
        if resp.not_modified {
            if let Some(h) = &old_hash
                && let Some(scan) = stored_scan(self.store, h).await?
            {
                return Ok(Outcome::Read {
                    scan,
                    etag: resp.etag,
                    last_modified: resp.last_modified,
                    hash: h.clone(),
                    parsed: false,
                    evidence: None,
                });
            }
            resp = match self.fetcher.fetch(url, &Conditional::default()).await {
                Ok(r) => r,
                Err(e) => return Ok(failed(&e)),
            };
        }
        let hash = body_hash(&resp.body);
        let mut evidence = resp.evidence(url, 0);
        evidence.body_blob = Some(hash.clone());
        if old_hash.as_deref() == Some(hash.as_str())
            && let Some(scan) = stored_scan(self.store, &hash).await?
        {
            return Ok(Outcome::Read {
                scan,
                etag: resp.etag,
                last_modified: resp.last_modified,
                hash,
                parsed: false,
                evidence: Some(Box::new(evidence)),
            });
        }
        let ct = resp
            .content_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_pdf = ct.contains("pdf")
            || resp.body.starts_with(b"%PDF")
            || (ct.is_empty() && canon::is_pdf(url));
        let is_text = ct.is_empty() || ct.contains("html") || ct.contains("text/plain");
        if !is_pdf && !is_text {
            return Ok(Outcome::Skipped);
        }
        if !is_pdf && looks_blocked(&resp.text) {
            return Ok(Outcome::Failed(HomeFailure {
                message: "the site answered with a block page or bot challenge".into(),
                blocked: true,
                transient: true,
                retry_after: None,
            }));
        }
        // PDF text and the scan on the blocking pool: a big page costs a
        // blocking thread's time, never a runtime worker's.
        let scanner = self.scanner.clone();
        let text = std::mem::take(&mut resp.text);
        let body = std::mem::take(&mut resp.body);
        let page_url = resp.url.clone();
        let job = tokio::task::spawn_blocking(move || {
            let scan = if is_pdf {
                pdf::text(&body).map(|t| scan_page(&scanner, &page_url, &t, true))
            } else {
                Ok(scan_page(&scanner, &page_url, &text, false))
            };
            (scan, body)
        });
        let (scan, body) = match job.await {
            Ok((Ok(scan), body)) => (scan, body),
            Ok((Err(e), _)) => {
                return Ok(Outcome::Failed(HomeFailure {
                    message: crate::text::chain(&e),
                    blocked: false,
                    transient: false,
                    retry_after: None,
                }));
            }
            Err(e) => {
                return Ok(Outcome::Failed(HomeFailure {
                    message: format!("reading the page failed: {e}"),
                    blocked: false,
                    transient: true,
                    retry_after: None,
                }));
            }
        };
        if let Some(store) = self.store {
            let store = store.clone();
            let json = serde_json::to_vec(&scan).unwrap_or_default();
            let h = hash.clone();
            blocking(move || {
                store.put_blob(&h, &body)?;
                store.put_blob(&scan_key(&h), &json)?;
                Ok(())
            })
            .await?;
        }
        Ok(Outcome::Read {
            scan,
            etag: resp.etag,
            last_modified: resp.last_modified,
            hash,
            parsed: true,
            evidence: Some(Box::new(evidence)),
        })
    }
}

fn failed(e: &FetchError) -> Outcome {
    if let FetchError::HttpStatus {
        status: 404 | 410, ..
    } = e
    {
        return Outcome::Gone;
    }
    Outcome::Failed(HomeFailure {
        message: crate::text::chain(e),
        blocked: e.is_blocked(),
        transient: e.is_transient(),
        retry_after: e.retry_after(),
    })
}
