//! One check of one source, end to end: fetch → extract → diff → detect →
//! commit. Also `check_all`, which runs many checks with a bound.
//!
//! **Architecture Invariant:** a failed check touches only its own source's
//! state; it never removes or rewrites a snapshot, and never stops the
//! other checks.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use tracing::Instrument;
use url::Url;

use crate::alert::route;
use crate::classify::{RefDataError, Reference};
use crate::config::Config;
use crate::detect;
use crate::diff::diff;
use crate::extract::{self, ExtractError, ExtractSpec};
use crate::fetch::{
    Conditional, FetchError, FetchOptions, FetchResponse, Fetcher, Politeness, Robots, block_reason,
};
use crate::model::{Entity, Source};
use crate::record::{Change, CheckStatus, FetchMeta, Finding, Record, ResponseMeta, Snapshot};
use crate::store::blocking;
use crate::store::{
    Commit, NewSnapshot, PageValidators, SourceState, StateLane, Store, StoreError, body_hash,
    sha256_hex,
};

/// A record read by a check, for [`Checker::conclude`].
struct Concluded {
    record: Record,
    body: Vec<u8>,
    hash: String,
    http_status: u16,
    /// Each response behind `body` (evidence).
    responses: Vec<ResponseMeta>,
    now: chrono::DateTime<Utc>,
}

/// What one check did, as `once` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Entity id.
    pub entity: String,
    /// Source id.
    pub source: String,
    /// URL checked.
    pub url: String,
    /// Outcome.
    pub status: CheckStatus,
    /// Number of changes.
    #[serde(rename = "changes")]
    pub change_count: usize,
    /// Number of findings.
    #[serde(rename = "findings")]
    pub finding_count: usize,
    /// The error, when failed or blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The new snapshot's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<u64>,
    /// The changes themselves.
    #[serde(skip)]
    pub changes: Vec<Change>,
    /// The findings as committed.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// The failure may go away by itself (timeout, 5xx, 429, robots.txt
    /// unreachable): the daemon retries before the next scheduled slot.
    #[serde(skip)]
    pub transient: bool,
    /// The server's `Retry-After`: not before this long from now.
    #[serde(skip)]
    pub retry_after: Option<std::time::Duration>,
}

/// Shared, read-only context of the checks.
#[derive(Clone, Debug)]
pub struct Checker {
    config: Arc<Config>,
    /// Built at the first check that needs it (a new or changed record),
    /// on the blocking pool: a pass in which nothing changed never pays its
    /// ~0.05 s and ~10 MB, and no runtime worker stalls while it is built.
    /// A `[reference] dir` is loaded eagerly, so its errors show at start.
    reference: Arc<tokio::sync::OnceCell<Arc<Reference>>>,
    store: Store,
    /// Source-state reads and writes, batched onto the blocking pool.
    states: StateLane,
    public: Fetcher,
    private: Fetcher,
    /// robots.txt rules, when honoured (the daemon's checker).
    robots: Option<Arc<Robots>>,
    index: Arc<std::collections::HashMap<String, (usize, usize)>>,
    /// The mention matchers of site sources, built once from the
    /// reference at the first site check.
    site_scanner: Arc<tokio::sync::OnceCell<Arc<crate::site::Scanner>>>,
}

/// Errors that stop a check from being recorded at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The store failed; nothing was lost, the check can be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The reference data is invalid.
    #[error(transparent)]
    Reference(#[from] RefDataError),
    /// A background task ended without a result (it panicked); nothing
    /// was recorded and the check can be retried.
    #[error(
        "{during} failed; nothing was recorded, the check will be retried (please report this as a bug)"
    )]
    Task {
        /// What the task was doing.
        during: &'static str,
        /// How it ended (panicked or cancelled).
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Checker {
    /// Builds the HTTP clients from the settings.
    pub fn new(config: Arc<Config>, store: Store) -> Result<Checker, CheckError> {
        let h = &config.settings.http;
        let opts = h.fetch_options(false);
        let reference = Arc::new(tokio::sync::OnceCell::new_with(
            match config.settings.reference_dir.as_deref() {
                Some(dir) => Some(Arc::new(crate::config::load_reference(Some(dir))?)),
                None => None,
            },
        ));
        let public = Fetcher::new(opts.clone())?;
        let private = Fetcher::new(FetchOptions {
            allow_private_addresses: true,
            ..opts
        })?;
        let mut idx = std::collections::HashMap::new();
        for (w, wl) in config.watchlists.iter().enumerate() {
            for (i, e) in wl.entities.iter().enumerate() {
                idx.insert(e.id.clone(), (w, i));
            }
        }
        let index = Arc::new(idx);
        Ok(Checker {
            config,
            states: StateLane::new(store.clone()),
            reference,
            store,
            public,
            private,
            robots: None,
            index,
            site_scanner: Arc::default(),
        })
    }

    /// The daemon's checker: every request waits for its host's turn under
    /// `polite`, and, with `robots`, a page robots.txt disallows is not
    /// fetched (the check is reported `blocked`, saying so).
    pub fn with_politeness(mut self, polite: Arc<Politeness>, robots: Option<Arc<Robots>>) -> Self {
        self.public = self.public.with_politeness(polite.clone());
        self.private = self.private.with_politeness(polite);
        self.robots = robots;
        self
    }

    /// Asks robots.txt whether `url` may be fetched; `Some(report)` when
    /// it may not (the failure already recorded).
    async fn robots_gate(
        &self,
        fetcher: &Fetcher,
        entity: &Entity,
        source: &Source,
        state: &SourceState,
        url: &Url,
    ) -> Result<Option<CheckReport>, CheckError> {
        let Some(robots) = &self.robots else {
            return Ok(None);
        };
        let verdict = robots.check(fetcher, url).await;
        let Some(msg) = verdict.message(url) else {
            return Ok(None);
        };
        let unreachable = matches!(verdict, crate::fetch::robots::Verdict::Unreachable { .. });
        let mut report = self
            .record_failure(entity, source, state.clone(), &msg, !unreachable)
            .await?;
        if let crate::fetch::robots::Verdict::Unreachable { retry_after, .. } = verdict {
            report.transient = true;
            report.retry_after = retry_after;
        }
        Ok(Some(report))
    }

    async fn fetch_failed(
        &self,
        entity: &Entity,
        source: &Source,
        state: SourceState,
        msg: &str,
        e: &FetchError,
    ) -> Result<CheckReport, CheckError> {
        let mut report = self
            .record_failure(entity, source, state, msg, e.is_blocked())
            .await?;
        report.transient = e.is_transient();
        report.retry_after = e.retry_after();
        Ok(report)
    }

    /// The configuration in use.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The reference data in use (the embedded data is built on first use,
    /// on the blocking pool; concurrent first callers wait for that one
    /// build instead of each building).
    pub async fn reference(&self) -> Result<&Arc<Reference>, CheckError> {
        self.reference
            .get_or_try_init(|| async {
                match tokio::task::spawn_blocking(Reference::embedded).await {
                    Ok(r) => Ok(Arc::new(r?)),
                    Err(source) => Err(CheckError::Task {
                        during: "building the reference tables",
                        source,
                    }),
                }
            })
            .await
    }

    /// The store in use.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn fetcher(&self, source: &Source) -> &Fetcher {
        let allow = source
            .allow_private_addresses
            .unwrap_or(self.config.settings.http.allow_private_addresses);
        if allow { &self.private } else { &self.public }
    }

    /// Checks many sources at once, at most `[http] concurrency` in flight.
    /// Reports come back in the order of `sources`.
    pub async fn check_all(&self, sources: &[(String, String)]) -> Vec<CheckReport> {
        let mut out = Vec::with_capacity(sources.len());
        self.check_each(sources, |r| out.push(r)).await;
        out
    }

    /// Like [`Checker::check_all`], but hands each report to `each` as soon
    /// as it and every report before it are done, in the order of
    /// `sources`, and keeps none: memory stays bounded by the checks in
    /// flight (plus those finished behind a slow one), not by the number
    /// of sources.
    /// `sources` are `(entity, source)` ids: borrowed from the
    /// configuration by `once` (at 100k sources, owned copies of every id
    /// were ~10 MB of the peak).
    pub async fn check_each<E: AsRef<str>, S: AsRef<str>>(
        &self,
        sources: &[(E, S)],
        mut each: impl FnMut(CheckReport),
    ) {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.config.settings.http.concurrency,
        ));
        let mut set = tokio::task::JoinSet::new();
        // Finished reports waiting for an earlier one, by index.
        let mut waiting: std::collections::BTreeMap<usize, CheckReport> = Default::default();
        let mut next = 0usize;
        let mut emit = |done: Option<(usize, CheckReport)>| {
            if let Some((i, rep)) = done {
                waiting.insert(i, rep);
            }
            while let Some(rep) = waiting.remove(&next) {
                each(rep);
                next += 1;
            }
        };
        for (i, (e, s)) in sources.iter().enumerate() {
            let me = self.clone();
            let (e, s) = (e.as_ref().to_string(), s.as_ref().to_string());
            let permit = limit.clone().acquire_owned().await;
            set.spawn(async move {
                let _permit = permit;
                (i, me.check_by_id(&e, &s).await)
            });
            while let Some(r) = set.try_join_next() {
                emit(r.ok());
            }
        }
        while let Some(r) = set.join_next().await {
            emit(r.ok());
        }
        // Every task has ended; a hole is a task that panicked or was
        // cancelled: report it, and hand over what waited behind it.
        while let Some((e, s)) = sources.get(next) {
            each(
                waiting
                    .remove(&next)
                    .unwrap_or_else(|| CheckReport::aborted(e.as_ref(), s.as_ref())),
            );
            next += 1;
        }
    }

    async fn check_by_id(&self, entity: &str, source: &str) -> CheckReport {
        let found = self
            .index
            .get(entity)
            .and_then(|&(w, i)| self.config.watchlists.get(w)?.entities.get(i))
            .and_then(|e| e.sources.iter().find(|s| s.id == source).map(|s| (e, s)));
        match found {
            Some((e, s)) => self.check(e, s).await,
            None => CheckReport::new(entity, source, "", CheckStatus::Failed)
                .with_error(format!("no source {entity}/{source} in the watchlists")),
        }
    }

    /// Checks one source and commits the result.
    pub async fn check(&self, entity: &Entity, source: &Source) -> CheckReport {
        let span = tracing::info_span!("check", entity = %entity.id, source = %source.id, host = source.url.host_str().unwrap_or(""));
        async {
            let mut report = match self.check_inner(entity, source).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %crate::text::chain(&e), "Check could not be recorded.");
                    CheckReport::of(entity, source, CheckStatus::Failed)
                        .with_error(crate::text::chain(&e))
                }
            };
            report.change_count = report.changes.len();
            report.finding_count = report.findings.len();
            tracing::info!(status = %report.status, changes = report.change_count, findings = report.finding_count, "Check done.");
            report
        }
        .instrument(span)
        .await
    }

    async fn check_inner(
        &self,
        entity: &Entity,
        source: &Source,
    ) -> Result<CheckReport, CheckError> {
        let key = source.key();
        let state = self.states.source_state(&key).await?.unwrap_or_default();
        let has_previous = state.last_snapshot.is_some();
        let now = Utc::now();
        let mut state = state;
        state.last_check = Some(now);

        if let Some(adapter) = &source.adapter {
            return self
                .check_adapter(entity, source, adapter, state, now)
                .await;
        }
        let fetcher = self.fetcher(source);
        if let Some(r) = self
            .robots_gate(fetcher, entity, source, &state, &source.url)
            .await?
        {
            return Ok(r);
        }
        if source.kind == crate::model::SourceKind::Site {
            return self.check_site(entity, source, state, now).await;
        }
        let paginated = match &*source.spec {
            ExtractSpec::Html(h) if h.next_page.is_some() => Some(h),
            _ => None,
        };
        // A paginated source is unchanged only when every page of its last
        // walk answers 304; a page that changed is kept for the full walk.
        let mut reuse: Option<(Url, FetchResponse)> = None;
        if let Some(spec) = paginated
            && has_previous
            && !state.pages.is_empty()
        {
            match self
                .revalidate_pages(fetcher, entity, source, &state, spec)
                .await?
            {
                Revalidated::Unchanged(pages) => {
                    if let Some(p1) = pages.first() {
                        state.etag = p1.etag.clone();
                        state.last_modified = p1.last_modified.clone();
                    }
                    state.pages = pages;
                    return self.record_unchanged(entity, source, state, None).await;
                }
                Revalidated::Changed(page) => reuse = page.map(|b| *b),
                Revalidated::Stopped(report) => return Ok(*report),
            }
        }
        // Conditional GET on the first page is safe only when it is the
        // whole source: a 304 says nothing of the pages behind it.
        let cond = if has_previous && paginated.is_none() {
            Conditional {
                etag: state.etag.clone(),
                last_modified: state.last_modified.clone(),
            }
        } else {
            Conditional::default()
        };
        let first = match take_reused(&mut reuse, &source.url) {
            Some(r) => r,
            None => match fetcher.fetch(&source.url, &cond).await {
                Ok(r) => r,
                Err(e) => {
                    return self
                        .fetch_failed(entity, source, state, &crate::text::chain(&e), &e)
                        .await;
                }
            },
        };
        if first.not_modified && paginated.is_none() {
            return self.record_unchanged(entity, source, state, None).await;
        }
        let (etag, last_modified, http_status) = (
            first.etag.clone(),
            first.last_modified.clone(),
            first.status,
        );

        // Extract (following pagination for HTML).
        let first_hash = body_hash(&first.body);
        if paginated.is_none()
            && state.body_hash.as_deref() == Some(first_hash.as_str())
            && has_previous
        {
            state.etag = etag;
            state.last_modified = last_modified;
            return self.record_unchanged(entity, source, state, None).await;
        }
        let previous = {
            let store = self.store.clone();
            let k = key.clone();
            blocking(move || store.latest_snapshot(&k)).await?
        };
        let Pages {
            record,
            body,
            validators: pages,
            unmatched,
            responses,
        } = match self
            .fetch_pages(fetcher, entity, source, &state, first, &mut reuse)
            .await?
        {
            Read::Pages(p) => p,
            Read::Stopped(report) => return Ok(*report),
        };
        // A selector that stopped matching is a broken source, not a
        // removed value: fail, keep the previous snapshot the latest.
        if let (Some(prev), Some(u)) = (&previous, &unmatched)
            && let Some(e) = u.degraded(&prev.record)
        {
            return self
                .record_failure(entity, source, state, &crate::text::chain(&e), false)
                .await;
        }
        let hash = if paginated.is_some() {
            body_hash(&body)
        } else {
            first_hash
        };
        state.etag = etag;
        state.last_modified = last_modified;
        state.body_hash = Some(hash.clone());
        if paginated.is_some() {
            state.pages = pages;
        }
        self.conclude(
            entity,
            source,
            state,
            previous,
            Concluded {
                record,
                body,
                hash,
                http_status,
                responses,
                now,
            },
        )
        .await
    }

    /// A registry adapter's check: its requests (`crate::registry`), then
    /// the same diff, rules and commit as any source. No robots.txt (an
    /// API, not pages); the per-host limiter applies to every request.
    async fn check_adapter(
        &self,
        entity: &Entity,
        source: &Source,
        adapter: &crate::model::Adapter,
        mut state: SourceState,
        now: chrono::DateTime<Utc>,
    ) -> Result<CheckReport, CheckError> {
        let fetcher = self.fetcher(source);
        let fetched = match crate::registry::fetch(
            fetcher,
            &self.config.settings.registries,
            adapter,
        )
        .await
        {
            Ok(f) => f,
            Err(e) => {
                let msg = crate::text::chain(&e);
                return match e.fetch_error() {
                    Some(fe) => self.fetch_failed(entity, source, state, &msg, fe).await,
                    None => {
                        self.record_failure(entity, source, state, &msg, false)
                            .await
                    }
                };
            }
        };
        tracing::debug!(
            adapter = adapter.name(),
            requests = fetched.requests,
            "Registry record read."
        );
        let hash = body_hash(&fetched.body);
        if state.last_snapshot.is_some() && state.body_hash.as_deref() == Some(hash.as_str()) {
            return self.record_unchanged(entity, source, state, None).await;
        }
        let previous = {
            let store = self.store.clone();
            let k = source.key();
            blocking(move || store.latest_snapshot(&k)).await?
        };
        state.body_hash = Some(hash.clone());
        self.conclude(
            entity,
            source,
            state,
            previous,
            Concluded {
                record: fetched.record,
                body: fetched.body,
                hash,
                http_status: fetched.status,
                responses: fetched.responses,
                now,
            },
        )
        .await
    }

    /// Diff against the previous snapshot, the rules, and the commit: the
    /// end of every check that read a record.
    async fn conclude(
        &self,
        entity: &Entity,
        source: &Source,
        mut state: SourceState,
        previous: Option<Snapshot>,
        read: Concluded,
    ) -> Result<CheckReport, CheckError> {
        let Concluded {
            record,
            body,
            hash,
            http_status,
            responses,
            now,
        } = read;
        let key = source.key();
        // One diff: empty means the record is the same (only noise moved).
        let changes = previous
            .as_ref()
            .map(|p| diff(&p.record, &record))
            .unwrap_or_default();
        if let Some(prev) = &previous
            && changes.is_empty()
        {
            return self
                .record_unchanged(entity, source, state, Some(prev.id))
                .await;
        }
        let snapshot = Snapshot {
            id: 0,
            source: key.clone(),
            url: source.url.to_string(),
            fetched_at: now,
            http_status,
            body_hash: hash,
            fetch: Some(FetchMeta {
                body_sha256: sha256_hex(&body),
                responses,
            }),
            record,
        };
        let status = if previous.is_some() {
            CheckStatus::Changed
        } else {
            CheckStatus::New
        };
        let store = self.store.clone();
        let others = {
            let store = store.clone();
            let keys: Vec<String> = entity
                .sources
                .iter()
                .filter(|s| s.id != source.id)
                .map(|s| s.key())
                .collect();
            blocking(move || {
                let mut v = Vec::new();
                for k in keys {
                    v.push((k.clone(), store.latest_snapshot(&k)?));
                }
                Ok(v)
            })
            .await?
        };
        let others: Vec<(&Source, &Snapshot)> = others
            .iter()
            .filter_map(|(k, snap)| {
                let src = entity.sources.iter().find(|s| &s.key() == k)?;
                Some((src, snap.as_ref()?))
            })
            .collect();
        let reference = self.reference().await?;
        let default_rules = detect::RuleConfig::default();
        let scope = detect::Scope {
            reference,
            rules: self
                .config
                .watchlist_of(entity)
                .map_or(&default_rules, |w| &w.rules),
            entity,
            now,
        };
        let observed = detect::Observation {
            source,
            previous: previous.as_ref(),
            current: &snapshot,
            changes: &changes,
        };
        let assessment = detect::judge(&scope, &[observed], &others);
        // Which of the keys the rules produced were raised before: read on
        // the blocking pool; a store error fails the check.
        let keys = assessment.candidate_keys();
        let raised = {
            let store = store.clone();
            blocking(move || {
                let mut raised = BTreeSet::new();
                for k in keys {
                    if store.finding_for_key(&k)?.is_some() {
                        raised.insert(k);
                    }
                }
                Ok(raised)
            })
            .await?
        };
        let findings = assessment.new_findings(&|k: &str| raised.contains(k));
        let deliveries = findings
            .iter()
            .map(|f| route::route(&self.config.settings, entity, f))
            .collect();
        state.last_status = Some(status);
        state.last_error = None;
        state.last_success = Some(now);
        state.consecutive_failures = 0;
        let commit = Commit {
            source: key,
            state,
            snapshot: Some(NewSnapshot { snapshot, body }),
            findings,
            deliveries,
        };
        let committed = blocking(move || store.commit(commit)).await?;
        Ok(CheckReport::of(entity, source, status)
            .with_snapshot(committed.snapshot)
            .with_outcome(changes, committed.findings))
    }

    /// Extracts the first page and, for paginated HTML, reads and extracts
    /// the pages behind it (each asked of robots.txt first, `reuse`d when
    /// revalidation already holds its body). [`Read::Stopped`] when the
    /// check ended there, its failure already recorded.
    async fn fetch_pages(
        &self,
        fetcher: &Fetcher,
        entity: &Entity,
        source: &Source,
        state: &SourceState,
        first: FetchResponse,
        reuse: &mut Option<(Url, FetchResponse)>,
    ) -> Result<Read, CheckError> {
        let mut record = Record::default();
        let mut body = Vec::new();
        let mut pages = Vec::new();
        let mut responses = Vec::new();
        // Selectors no page matched (see `Unmatched::degraded`).
        let mut unmatched: Option<extract::Unmatched> = None;
        match &*source.spec {
            ExtractSpec::Json(spec) => {
                match extract::extract_json_page(spec, &first.text) {
                    Ok((r, u)) => {
                        record = r;
                        unmatched = Some(u);
                    }
                    Err(e) => {
                        return stopped(
                            self.extract_failed(entity, source, state.clone(), e, &first.text)
                                .await,
                        );
                    }
                }
                responses.push(first.evidence(&source.url, 0));
                body = first.body;
            }
            ExtractSpec::Html(spec) => {
                // Selectors are reference-counted: a cheap copy to move.
                let shared = Arc::new(spec.clone());
                let mut page = first;
                let mut requested = source.url.clone();
                let mut seen: BTreeSet<Url> = BTreeSet::new();
                let mut n = 0u32;
                loop {
                    n += 1;
                    seen.insert(page.url.clone());
                    // On the blocking pool: a big page costs up to the
                    // parse bound (`extract::limits`), never a runtime
                    // worker's time.
                    let (extracted, text) = extract_page(
                        shared.clone(),
                        std::mem::take(&mut page.text),
                        page.url.clone(),
                    )
                    .await?;
                    let p = match extracted {
                        Ok(p) => p,
                        Err(e) => {
                            return stopped(
                                self.extract_failed(entity, source, state.clone(), e, &text)
                                    .await,
                            );
                        }
                    };
                    if n > 1 {
                        body.extend_from_slice(
                            format!("\n<!-- pivotwatch: page {n}: {} -->\n", page.url).as_bytes(),
                        );
                    }
                    responses.push(page.evidence(&requested, body.len()));
                    body.extend_from_slice(&page.body);
                    merge(&mut record, p.record);
                    match &mut unmatched {
                        Some(u) => u.intersect(&p.unmatched),
                        None => unmatched = Some(p.unmatched),
                    }
                    pages.push(PageValidators {
                        url: requested.to_string(),
                        etag: page.etag.clone(),
                        last_modified: page.last_modified.clone(),
                        next: p.next.as_ref().map(Url::to_string),
                        ..PageValidators::default()
                    });
                    let Some(next) = p.next else { break };
                    if n >= spec.max_pages || seen.contains(&next) {
                        break;
                    }
                    if let Some(r) = self
                        .robots_gate(fetcher, entity, source, state, &next)
                        .await?
                    {
                        return Ok(Read::Stopped(Box::new(r)));
                    }
                    page = match take_reused(reuse, &next) {
                        Some(r) => r,
                        None => match fetcher.fetch(&next, &Conditional::default()).await {
                            Ok(r) => r,
                            Err(e) => {
                                let msg =
                                    format!("page {} ({next}): {}", n + 1, crate::text::chain(&e));
                                return stopped(
                                    self.fetch_failed(entity, source, state.clone(), &msg, &e)
                                        .await,
                                );
                            }
                        },
                    };
                    requested = next;
                }
            }
        }
        Ok(Read::Pages(Pages {
            record,
            body,
            validators: pages,
            unmatched,
            responses,
        }))
    }

    /// Asks every page of the last walk of a paginated source whether it
    /// changed, each with its own validators, following the stored chain.
    async fn revalidate_pages(
        &self,
        fetcher: &Fetcher,
        entity: &Entity,
        source: &Source,
        state: &SourceState,
        spec: &extract::HtmlSpec,
    ) -> Result<Revalidated, CheckError> {
        let mut out = Vec::with_capacity(state.pages.len());
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut url = source.url.clone();
        for (i, page) in state.pages.iter().enumerate() {
            if page.url != url.as_str() || (page.etag.is_none() && page.last_modified.is_none()) {
                // The chain moved, or this page cannot be asked: read it all.
                return Ok(Revalidated::Changed(None));
            }
            if i > 0
                && let Some(r) = self
                    .robots_gate(fetcher, entity, source, state, &url)
                    .await?
            {
                return Ok(Revalidated::Stopped(Box::new(r)));
            }
            let cond = Conditional {
                etag: page.etag.clone(),
                last_modified: page.last_modified.clone(),
            };
            let resp = match fetcher.fetch(&url, &cond).await {
                Ok(r) => r,
                Err(e) => {
                    let msg = if i == 0 {
                        crate::text::chain(&e)
                    } else {
                        format!("page {} ({url}): {}", i + 1, crate::text::chain(&e))
                    };
                    let r = self
                        .fetch_failed(entity, source, state.clone(), &msg, &e)
                        .await?;
                    return Ok(Revalidated::Stopped(Box::new(r)));
                }
            };
            if !resp.not_modified {
                return Ok(Revalidated::Changed(Some(Box::new((url, resp)))));
            }
            seen.insert(url.to_string());
            out.push(PageValidators {
                url: page.url.clone(),
                etag: resp.etag,
                last_modified: resp.last_modified,
                next: page.next.clone(),
                ..PageValidators::default()
            });
            let Some(next) = &page.next else {
                return Ok(Revalidated::Unchanged(out));
            };
            let pages_read = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if pages_read >= spec.max_pages || seen.contains(next) {
                return Ok(Revalidated::Unchanged(out));
            }
            url = match Url::parse(next) {
                Ok(u) => u,
                Err(_) => return Ok(Revalidated::Changed(None)),
            };
        }
        // The chain goes on past the pages stored (`max_pages` was raised).
        Ok(Revalidated::Changed(None))
    }

    async fn extract_failed(
        &self,
        entity: &Entity,
        source: &Source,
        state: SourceState,
        e: ExtractError,
        text: &str,
    ) -> Result<CheckReport, CheckError> {
        let reason = block_reason(text);
        let blocked = reason.is_some();
        let msg = match reason {
            Some(why) => format!(
                "the site answered with {why}, not the catalogue: a block page or bot challenge ({})",
                crate::text::chain(&e)
            ),
            None => crate::text::chain(&e),
        };
        self.record_failure(entity, source, state, &msg, blocked)
            .await
    }

    async fn record_failure(
        &self,
        entity: &Entity,
        source: &Source,
        mut state: SourceState,
        msg: &str,
        blocked: bool,
    ) -> Result<CheckReport, CheckError> {
        let status = if blocked {
            CheckStatus::Blocked
        } else {
            CheckStatus::Failed
        };
        state.last_status = Some(status);
        state.last_error = Some(msg.to_string());
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        self.states.put_source_state(&source.key(), state).await?;
        tracing::warn!(error = %msg, "Check failed.");
        Ok(CheckReport::of(entity, source, status).with_error(msg))
    }

    async fn record_unchanged(
        &self,
        entity: &Entity,
        source: &Source,
        mut state: SourceState,
        snapshot: Option<u64>,
    ) -> Result<CheckReport, CheckError> {
        let now = Utc::now();
        state.last_status = Some(CheckStatus::Unchanged);
        state.last_error = None;
        state.last_success = Some(now);
        state.consecutive_failures = 0;
        self.states.put_source_state(&source.key(), state).await?;
        Ok(CheckReport::of(entity, source, CheckStatus::Unchanged).with_snapshot(snapshot))
    }
}

/// Whole-site sources (`crate::site`).
impl Checker {
    /// One check of a `kind = "site"` source: the walk, then the same
    /// diff, judgement and commit as every source. A page that failed
    /// keeps its previous mentions; the check fails only when the home
    /// page could not be read and nothing else was.
    async fn check_site(
        &self,
        entity: &Entity,
        source: &Source,
        mut state: SourceState,
        now: chrono::DateTime<Utc>,
    ) -> Result<CheckReport, CheckError> {
        let key = source.key();
        let reference = self.reference().await?.clone();
        let scanner = self
            .site_scanner
            .get_or_try_init(|| async {
                match tokio::task::spawn_blocking(move || crate::site::Scanner::new(reference))
                    .await
                {
                    Ok(s) => Ok(Arc::new(s)),
                    Err(source) => Err(CheckError::Task {
                        during: "building the site matchers",
                        source,
                    }),
                }
            })
            .await?
            .clone();
        let default_spec = crate::model::SiteSpec::default();
        let spec = source.site.as_deref().unwrap_or(&default_spec);
        let crawler = crate::site::crawl::Crawler {
            fetcher: self.fetcher(source),
            robots: self.robots.as_deref(),
            store: Some(&self.store),
            scanner,
        };
        let known = crate::site::crawl::load_pages(&self.store, &state.pages).await?;
        let mut crawl = crawler.crawl(&source.url, spec, &known).await?;
        tracing::info!(
            pages = crawl.pages.len(),
            read = crawl.read,
            parsed = crawl.parsed,
            problems = crawl.problems.len(),
            "Site walked."
        );
        if crawl.read == 0 || crawl.scans.is_empty() {
            let (msg, blocked, transient, retry_after) = match &crawl.home {
                Some(h) => (h.message.clone(), h.blocked, h.transient, h.retry_after),
                None => (
                    "no page of the site could be read".to_string(),
                    false,
                    true,
                    None,
                ),
            };
            let mut report = self
                .record_failure(entity, source, state, &msg, blocked)
                .await?;
            report.transient = transient;
            report.retry_after = retry_after;
            return Ok(report);
        }
        let problems = (!crawl.problems.is_empty()).then(|| {
            format!(
                "{} page problem(s), their mentions kept: {}",
                crawl.problems.len(),
                crawl.problems.join("; ")
            )
        });
        let record = crate::site::build_record(crawl.scans.iter().map(|(u, s)| (u.as_str(), s)));
        let body = crawl.manifest();
        let hash = body_hash(&body);
        state.pages = crate::site::crawl::save_pages(&self.store, &crawl.pages).await?;
        state.body_hash = Some(hash.clone());
        state.etag = None;
        state.last_modified = None;
        let previous = {
            let store = self.store.clone();
            blocking(move || store.latest_snapshot(&key)).await?
        };
        let report = self
            .conclude(
                entity,
                source,
                state,
                previous,
                Concluded {
                    record,
                    body,
                    hash,
                    http_status: 200,
                    // The snapshot's body is the walk's page manifest; each
                    // page read this time is its own blob (`body_blob`).
                    responses: std::mem::take(&mut crawl.responses),
                    now,
                },
            )
            .await?;
        Ok(match problems {
            Some(p) => report.with_error(p),
            None => report,
        })
    }
}

impl CheckReport {
    /// The report of a check of `entity/source` at `url` that ended with
    /// `status`: no error, snapshot, change or finding yet (see the `with_`
    /// methods).
    pub fn new(
        entity: impl Into<String>,
        source: impl Into<String>,
        url: impl Into<String>,
        status: CheckStatus,
    ) -> CheckReport {
        CheckReport {
            entity: entity.into(),
            source: source.into(),
            url: url.into(),
            status,
            change_count: 0,
            finding_count: 0,
            error: None,
            snapshot: None,
            changes: vec![],
            findings: vec![],
            transient: false,
            retry_after: None,
        }
    }

    /// [`CheckReport::new`] for a configured source.
    fn of(entity: &Entity, source: &Source, status: CheckStatus) -> CheckReport {
        CheckReport::new(
            entity.id.as_str(),
            source.id.as_str(),
            source.url.as_str(),
            status,
        )
    }

    /// With the error that failed or blocked the check.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// With the snapshot the check recorded or found unchanged.
    pub fn with_snapshot(mut self, snapshot: Option<u64>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// With the changes found and the findings committed.
    pub fn with_outcome(mut self, changes: Vec<Change>, findings: Vec<Finding>) -> Self {
        self.change_count = changes.len();
        self.finding_count = findings.len();
        self.changes = changes;
        self.findings = findings;
        self
    }

    /// The report of a check whose task ended without one (it panicked or
    /// was cancelled).
    pub(crate) fn aborted(entity: &str, source: &str) -> CheckReport {
        CheckReport::new(entity, source, "", CheckStatus::Failed)
            .with_error("the check task ended abnormally")
    }
}

/// Page text under extraction at once, across the process, in KiB: the
/// checks in flight are bounded by count (`[http] concurrency`), and this
/// bounds them by size as well (a DOM-path page holds ~10× its text while
/// it is read). A page bigger than the whole budget is read alone.
const EXTRACT_BUDGET_KIB: u32 = 32 * 1024;
static EXTRACT_BUDGET: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(EXTRACT_BUDGET_KIB as usize);

/// Waits until `len` bytes of page text fit in `budget` (of `total_kib`).
async fn budget_permit(
    budget: &'static tokio::sync::Semaphore,
    total_kib: u32,
    len: usize,
) -> Option<tokio::sync::SemaphorePermit<'static>> {
    let kib = u32::try_from(len.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, total_kib.max(1));
    budget.acquire_many(kib).await.ok()
}

/// Extracts one HTML page on the blocking pool, within the byte budget;
/// gives the text back (a failure looks in it for a block page). The
/// page's tree (DOM path) lives and dies inside the blocking task: none
/// is held across an await.
async fn extract_page(
    spec: Arc<extract::HtmlSpec>,
    text: String,
    url: Url,
) -> Result<(Result<extract::HtmlPage, ExtractError>, String), CheckError> {
    let permit = budget_permit(&EXTRACT_BUDGET, EXTRACT_BUDGET_KIB, text.len()).await;
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        tracing::trace!(url = %url, engine = %spec.engine_name(), "extracting");
        let clock = ParseClock::start();
        let r = extract::extract_html(&spec, &text, &url, &|| clock.so_far());
        (r, text)
    });
    job.await.map_err(|source| CheckError::Task {
        during: "extracting the page",
        source,
    })
}

/// The pages of one check, read and extracted.
struct Pages {
    /// Their records, merged.
    record: Record,
    /// Their bodies, joined (a marker comment before each page after the
    /// first).
    body: Vec<u8>,
    /// Each page's validators (paginated HTML).
    validators: Vec<PageValidators>,
    /// Selectors no page matched (see `Unmatched::degraded`).
    unmatched: Option<extract::Unmatched>,
    /// Each page's response, with where its body sits in `body`.
    responses: Vec<ResponseMeta>,
}

/// What reading the pages of a check gave.
enum Read {
    /// Every page read and extracted.
    Pages(Pages),
    /// The check ended here (robots.txt, a failed fetch or extraction),
    /// already recorded.
    Stopped(Box<CheckReport>),
}

fn stopped(report: Result<CheckReport, CheckError>) -> Result<Read, CheckError> {
    report.map(|r| Read::Stopped(Box::new(r)))
}

/// What asking the pages of a paginated source found.
enum Revalidated {
    /// Every page answered 304: their refreshed validators.
    Unchanged(Vec<PageValidators>),
    /// Something changed: the whole chain is read again, reusing the page
    /// that answered with a body (requested URL, response), if any.
    Changed(Option<Box<(Url, FetchResponse)>>),
    /// The check ended here (robots.txt, a failed fetch), already recorded.
    Stopped(Box<CheckReport>),
}

/// The response kept for `url`, if it is the one kept.
fn take_reused(reuse: &mut Option<(Url, FetchResponse)>, url: &Url) -> Option<FetchResponse> {
    if reuse.as_ref().is_some_and(|(u, _)| u == url) {
        reuse.take().map(|(_, r)| r)
    } else {
        None
    }
}

fn merge(into: &mut Record, page: Record) {
    for (k, v) in page.fields {
        into.fields.entry(k).or_insert(v);
    }
    extract::insert_items(into, page.items.into_values().collect());
}

/// The per-host limits of the settings (`[http] per_host_*` and each
/// `[hosts.NAME]`), as `fetch::Politeness` takes them: the one reading of
/// them for `run`, `once` and `probe`.
pub(crate) fn host_limits(
    config: &Config,
) -> (
    usize,
    std::time::Duration,
    Vec<(String, crate::fetch::polite::HostLimits)>,
) {
    let h = &config.settings.http;
    let overrides = config
        .settings
        .hosts
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                crate::fetch::polite::HostLimits {
                    concurrency: s.concurrency,
                    interval: s.interval,
                },
            )
        })
        .collect();
    (h.per_host_concurrency, h.per_host_interval, overrides)
}

/// The robots.txt cache when `[http] robots_txt` is on, sharing the
/// per-host turns of `polite`.
pub(crate) fn robots_for(config: &Config, polite: &Arc<Politeness>) -> Option<Arc<Robots>> {
    config.settings.http.robots_txt.then(|| {
        Arc::new(Robots::new(
            &config.settings.http.user_agent,
            Some(polite.clone()),
        ))
    })
}

/// The clock of one page's parse ([`extract::limits::parse`] reads none):
/// the thread's CPU time where it can be read (so a loaded machine does not
/// refuse a big page that is merely slow to get the processor), else wall
/// time. Started on the thread that parses.
pub(crate) struct ParseClock {
    wall: std::time::Instant,
    cpu: Option<std::time::Duration>,
}

impl ParseClock {
    /// Starts now, on this thread.
    pub(crate) fn start() -> ParseClock {
        ParseClock {
            wall: std::time::Instant::now(),
            cpu: thread_cpu_time(),
        }
    }

    /// Time spent since [`ParseClock::start`].
    pub(crate) fn so_far(&self) -> std::time::Duration {
        match (self.cpu, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn thread_cpu_time() -> Option<std::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which
    // lives on this stack frame; CLOCK_THREAD_CPUTIME_ID exists on every
    // Linux this builds for, and a failure is reported by the return code.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(std::time::Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod budget_tests {
    use super::budget_permit;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn pages_under_extraction_are_bounded_by_bytes() {
        static B: Semaphore = Semaphore::const_new(1024);
        let first = budget_permit(&B, 1024, 600 * 1024).await.expect("permit");
        // A second 600 KiB page waits while the first is read...
        let second = tokio::time::timeout(
            Duration::from_millis(200),
            budget_permit(&B, 1024, 600 * 1024),
        )
        .await;
        assert!(second.is_err(), "two 600 KiB pages were read at once");
        // ...but a small one fits beside it.
        let small = budget_permit(&B, 1024, 100 * 1024).await.expect("permit");
        drop((first, small));
        // A page bigger than the whole budget is read, alone.
        let big = tokio::time::timeout(
            Duration::from_secs(5),
            budget_permit(&B, 1024, 10 * 1024 * 1024),
        )
        .await
        .expect("the budget was free");
        assert!(big.is_some());
        assert_eq!(B.available_permits(), 0);
    }
}
