//! Per-host politeness: at most N requests in flight to one host, a
//! minimum interval between the starts of two requests to it, and a pause
//! when the host answered 429 or 503 with `Retry-After` (or asked for a
//! `Crawl-delay` in its robots.txt).
//!
//! A [`Politeness`] is attached to a [`crate::fetch::Fetcher`] with
//! [`crate::fetch::Fetcher::with_politeness`]; every request that fetcher
//! makes (pages, pagination, robots.txt) waits for its host's turn. The
//! daemon attaches one; `once` and `probe` do not.
//!
//! Hosts are keyed by lower-case host name without the port: one server
//! behind several ports is still one server to be polite to.
//!
//! **Boundary:** clocks and tokio synchronisation only; no network, no
//! store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Url;

use super::{FetchError, FetchResponse};

/// Longest pause a `Retry-After` imposes on requests already queued for a
/// host; the scheduler keeps the full delay for the source itself.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);
/// Longest `Crawl-delay` honoured between two requests to one host.
pub const MAX_CRAWL_DELAY: Duration = Duration::from_secs(600);

/// Overrides for one host (`[hosts."name"]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostLimits {
    /// Requests in flight to this host at once.
    pub concurrency: Option<usize>,
    /// Minimum time between the starts of two requests to this host.
    pub interval: Option<Duration>,
}

/// What one request did, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct FetchObservation<'a> {
    /// Host name (lower case).
    pub host: &'a str,
    /// Time from sending the request to the end of the body (waiting for
    /// the host's turn not included).
    pub elapsed: Duration,
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
}

/// Called after every request (e.g. to feed a latency histogram).
pub type Observer = Arc<dyn Fn(&FetchObservation<'_>) + Send + Sync>;

#[derive(Debug, Clone, Default)]
struct Limits {
    concurrency: usize,
    interval: Duration,
    overrides: BTreeMap<String, HostLimits>,
}

impl Limits {
    fn of(&self, host: &str) -> (usize, Duration) {
        let o = self.overrides.get(host).copied().unwrap_or_default();
        (
            o.concurrency.unwrap_or(self.concurrency).max(1),
            o.interval.unwrap_or(self.interval),
        )
    }
}

#[derive(Debug)]
struct Host {
    /// Bounds the requests in flight; replaced when a reload changes the
    /// limit (requests holding a permit of the old one finish normally).
    sem: Arc<Semaphore>,
    /// The limit `sem` was made for.
    concurrency: usize,
    /// When the next request may start (the previous start plus the
    /// interval): reserved under the lock, waited for outside it, so
    /// requests start in arrival order without holding the lock asleep.
    next_start: Option<Instant>,
    /// No request before this (a `Retry-After`).
    hold_until: Option<Instant>,
    /// The host's robots.txt `Crawl-delay`, capped.
    crawl_delay: Option<Duration>,
}

impl Host {
    /// A host seen for the first time, with its concurrency limit.
    fn new(concurrency: usize) -> Host {
        Host {
            sem: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            next_start: None,
            hold_until: None,
            crawl_delay: None,
        }
    }
}

/// Per-host limits shared by every request of a daemon. Cheap to share
/// behind an `Arc`.
pub struct Politeness {
    limits: Mutex<Limits>,
    hosts: Mutex<HashMap<String, Host>>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Politeness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Politeness")
            .field("limits", &*lock(&self.limits))
            .finish_non_exhaustive()
    }
}

/// Held while a request to a host is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct HostPermit {
    _permit: Option<OwnedSemaphorePermit>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent
    // (plain assignments), so a poisoned lock is used as is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The host key of a URL: lower-case host name, no port.
pub fn host_key(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_ascii_lowercase()
}

impl Politeness {
    /// Limits for every host (`[http] per_host_concurrency`,
    /// `per_host_interval`) and per-host overrides (`[hosts."name"]`).
    pub fn new(
        concurrency: usize,
        interval: Duration,
        overrides: impl IntoIterator<Item = (String, HostLimits)>,
    ) -> Politeness {
        Politeness {
            limits: Mutex::new(Limits {
                concurrency: concurrency.max(1),
                interval,
                overrides: overrides
                    .into_iter()
                    .map(|(h, l)| (h.to_ascii_lowercase(), l))
                    .collect(),
            }),
            hosts: Mutex::new(HashMap::new()),
            observer: None,
        }
    }

    /// Calls `f` after every request.
    pub fn with_observer(mut self, f: Observer) -> Politeness {
        self.observer = Some(f);
        self
    }

    /// Replaces the limits (a configuration reload). Pauses and crawl
    /// delays learnt from the hosts are kept.
    pub fn reconfigure(
        &self,
        concurrency: usize,
        interval: Duration,
        overrides: impl IntoIterator<Item = (String, HostLimits)>,
    ) {
        let new = Politeness::new(concurrency, interval, overrides);
        let limits = lock(&new.limits).clone();
        *lock(&self.limits) = limits;
    }

    /// The concurrency and interval in force for a host (the interval
    /// includes its `Crawl-delay`).
    pub fn limits(&self, host: &str) -> (usize, Duration) {
        let (c, i) = lock(&self.limits).of(host);
        let delay = lock(&self.hosts).get(host).and_then(|h| h.crawl_delay);
        (c, delay.map_or(i, |d| i.max(d)))
    }

    /// Waits until a request to `url`'s host may start, and returns the
    /// permit to hold while it runs.
    pub async fn acquire(&self, url: &Url) -> HostPermit {
        let host = host_key(url);
        let (concurrency, interval) = lock(&self.limits).of(&host);
        let sem = {
            let mut hosts = lock(&self.hosts);
            let h = hosts
                .entry(host.clone())
                .or_insert_with(|| Host::new(concurrency));
            if h.concurrency != concurrency {
                h.sem = Arc::new(Semaphore::new(concurrency));
                h.concurrency = concurrency;
            }
            h.sem.clone()
        };
        // The semaphore is never closed, so this only fails if it were;
        // then the request goes ahead without a slot rather than never.
        let permit = sem.acquire_owned().await.ok();
        let start = {
            let mut hosts = lock(&self.hosts);
            let now = Instant::now();
            match hosts.get_mut(&host) {
                Some(h) => {
                    let mut at = now;
                    if let Some(n) = h.next_start {
                        at = at.max(n);
                    }
                    if let Some(hold) = h.hold_until {
                        at = at.max(hold.min(now + MAX_HOLD));
                    }
                    let gap = h.crawl_delay.map_or(interval, |d| interval.max(d));
                    h.next_start = Some(at + gap);
                    at
                }
                None => now,
            }
        };
        tokio::time::sleep_until(start).await;
        HostPermit { _permit: permit }
    }

    /// No request to `host` before `delay` from now (a `Retry-After`).
    pub fn hold(&self, host: &str, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_HOLD);
        let (concurrency, _) = lock(&self.limits).of(host);
        let mut hosts = lock(&self.hosts);
        let h = hosts
            .entry(host.to_string())
            .or_insert_with(|| Host::new(concurrency));
        h.hold_until = Some(h.hold_until.map_or(until, |u| u.max(until)));
    }

    /// How long requests to `host` must still wait because of a
    /// `Retry-After`, if at all.
    pub fn held_for(&self, host: &str) -> Option<Duration> {
        let hosts = lock(&self.hosts);
        let until = hosts.get(host)?.hold_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Records a host's robots.txt `Crawl-delay` (capped at
    /// [`MAX_CRAWL_DELAY`]); `None` clears it.
    pub fn set_crawl_delay(&self, host: &str, delay: Option<Duration>) {
        let (concurrency, _) = lock(&self.limits).of(host);
        let mut hosts = lock(&self.hosts);
        let h = hosts
            .entry(host.to_string())
            .or_insert_with(|| Host::new(concurrency));
        h.crawl_delay = delay.map(|d| d.min(MAX_CRAWL_DELAY));
    }

    /// Learns from a finished request: a 429 or 503 with `Retry-After`
    /// pauses the host; the observer (metrics) is told the latency.
    pub fn observe(
        &self,
        url: &Url,
        result: &Result<FetchResponse, FetchError>,
        elapsed: Duration,
    ) {
        let host = host_key(url);
        let status = match result {
            Ok(r) => Some(r.status),
            Err(FetchError::HttpStatus {
                status,
                retry_after,
                ..
            }) => {
                if matches!(status, 429 | 503)
                    && let Some(d) = retry_after
                {
                    self.hold(&host, *d);
                }
                Some(*status)
            }
            Err(_) => None,
        };
        if let Some(f) = &self.observer {
            f(&FetchObservation {
                host: &host,
                elapsed,
                status,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_to_one_host_are_spaced_by_the_interval() {
        let p = Politeness::new(4, Duration::from_secs(2), []);
        let t0 = Instant::now();
        let _a = p.acquire(&url("http://a.example/1")).await;
        let _b = p.acquire(&url("http://A.example:8080/2")).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        // Another host is not held up.
        let t1 = Instant::now();
        let _c = p.acquire(&url("http://b.example/")).await;
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn overrides_retry_after_and_crawl_delay() {
        let p = Politeness::new(
            2,
            Duration::from_secs(1),
            [(
                "Slow.example".to_string(),
                HostLimits {
                    concurrency: Some(1),
                    interval: Some(Duration::from_secs(5)),
                },
            )],
        );
        assert_eq!(p.limits("slow.example"), (1, Duration::from_secs(5)));
        p.hold("fast.example", Duration::from_secs(30));
        assert!(p.held_for("fast.example").is_some());
        let t0 = Instant::now();
        drop(p.acquire(&url("http://fast.example/")).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
        p.set_crawl_delay("fast.example", Some(Duration::from_secs(10_000)));
        assert_eq!(p.limits("fast.example").1, MAX_CRAWL_DELAY);
    }
}
