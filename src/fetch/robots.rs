//! robots.txt (RFC 9309): fetched once per origin, cached for a day,
//! size-capped, matched with `texting_robots`.
//!
//! What an answer means, as RFC 9309 §2.3.1 says:
//! * 2xx: the rules apply (the first [`MAX_ROBOTS_BYTES`] are parsed; a
//!   file that does not parse allows everything, with a warning);
//! * 4xx other than 429: there are no rules, everything is allowed;
//! * 429, 5xx, a timeout or a dropped connection: the site is unreachable,
//!   so nothing may be fetched now; the check fails (transiently) and is
//!   tried again later;
//! * anything else (a refused private address, an invalid URL …): no
//!   rules; the page fetch itself reports that error.
//!
//! The group for the crawler's product token (the `User-Agent` up to its
//! first `/`, e.g. `pivotwatch`) wins over the `*` group. A `Crawl-delay`
//! is passed to [`Politeness`] as the host's minimum interval.
//!
//! **Boundary:** network only through the [`Fetcher`] it is given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::polite::{Politeness, host_key};
use super::{Conditional, FetchError, Fetcher};

/// Largest part of a robots.txt that is read (RFC 9309 asks for at least
/// 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;
/// How long fetched rules are used (RFC 9309: no more than 24 hours).
pub const ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an unreachable robots.txt is remembered before trying again.
pub const UNREACHABLE_TTL: Duration = Duration::from_secs(60);

/// May a URL be fetched?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Yes.
    Allowed,
    /// No: the site's robots.txt disallows it for this crawler.
    Disallowed {
        /// The robots.txt that said so.
        robots_url: String,
    },
    /// Not now: the robots.txt could not be fetched (server error, 429,
    /// timeout), which RFC 9309 treats as "disallow everything for now".
    Unreachable {
        /// The robots.txt tried.
        robots_url: String,
        /// Why it could not be fetched.
        error: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

impl Verdict {
    /// The message a disallowed or unreachable check reports; `None` when
    /// allowed.
    pub fn message(&self, url: &Url) -> Option<String> {
        match self {
            Verdict::Allowed => None,
            Verdict::Disallowed { robots_url } => Some(format!(
                "robots.txt disallows {} for this crawler ({robots_url}); the page was not fetched: \
                 ask the site for permission, or remove the source (or set [http] robots_txt = false \
                 only for sites you are allowed to crawl)",
                path_of(url)
            )),
            Verdict::Unreachable {
                robots_url, error, ..
            } => Some(format!(
                "robots.txt could not be fetched ({robots_url}: {error}), so nothing may be fetched \
                 from this site now; the check will be retried"
            )),
        }
    }
}

fn path_of(url: &Url) -> String {
    let mut p = url.path().to_string();
    if let Some(q) = url.query() {
        p.push('?');
        p.push_str(q);
    }
    p
}

enum Rules {
    AllowAll,
    Parsed(Box<texting_robots::Robot>),
    Unreachable {
        error: String,
        retry_after: Option<Duration>,
    },
}

struct Entry {
    at: Instant,
    rules: Rules,
}

impl Entry {
    fn fresh(&self) -> bool {
        let ttl = match self.rules {
            Rules::Unreachable { .. } => UNREACHABLE_TTL,
            _ => ROBOTS_TTL,
        };
        self.at.elapsed() < ttl
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The robots.txt cache of a daemon. Cheap to share behind an `Arc`.
pub struct Robots {
    token: String,
    polite: Option<Arc<Politeness>>,
    /// One slot per origin; its async lock makes concurrent checks of one
    /// site wait for a single robots.txt fetch.
    cache: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for Robots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Robots")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The product token of a `User-Agent`: its first word up to `/`
/// (`pivotwatch/0.1 (+mailto:…)` → `pivotwatch`).
pub fn product_token(user_agent: &str) -> String {
    let t: String = user_agent
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if t.is_empty() {
        "pivotwatch".to_string()
    } else {
        t.to_ascii_lowercase()
    }
}

fn parse(token: &str, body: &[u8]) -> Option<texting_robots::Robot> {
    let body = &body[..body.len().min(MAX_ROBOTS_BYTES)];
    // The parser is fuzzed upstream; a panic on a hostile file must still
    // not take a daemon worker down.
    std::panic::catch_unwind(|| texting_robots::Robot::new(token, body).ok())
        .ok()
        .flatten()
}

/// The `Sitemap:` URLs of a robots.txt body (any user agent's), read by
/// the same parser as the rules.
pub fn sitemaps_in(body: &[u8]) -> Vec<String> {
    parse("*", body).map(|r| r.sitemaps).unwrap_or_default()
}

impl Robots {
    /// A cache for the crawler named by `user_agent`, telling `polite`
    /// about `Crawl-delay`s.
    pub fn new(user_agent: &str, polite: Option<Arc<Politeness>>) -> Robots {
        Robots {
            token: product_token(user_agent),
            polite,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The origin's cache entry, fetched with `fetcher` when it is not
    /// cached or has gone stale.
    async fn entry(
        &self,
        fetcher: &Fetcher,
        url: &Url,
        robots_url: &Url,
    ) -> tokio::sync::OwnedMutexGuard<Option<Entry>> {
        let origin = url.origin().ascii_serialization();
        let slot = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(origin)
            .or_default()
            .clone();
        let mut entry = slot.lock_owned().await;
        if !entry.as_ref().is_some_and(Entry::fresh) {
            let rules = self.fetch(fetcher, robots_url).await;
            *entry = Some(Entry {
                at: Instant::now(),
                rules,
            });
        }
        entry
    }

    /// The `Sitemap:` URLs of `url`'s origin's robots.txt, from the same
    /// cached copy [`Robots::check`] reads (no second fetch).
    pub async fn sitemaps(&self, fetcher: &Fetcher, url: &Url) -> Vec<String> {
        let Ok(robots_url) = url.join("/robots.txt") else {
            return Vec::new();
        };
        match self
            .entry(fetcher, url, &robots_url)
            .await
            .as_ref()
            .map(|e| &e.rules)
        {
            Some(Rules::Parsed(r)) => r.sitemaps.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether `url` may be fetched, fetching the origin's robots.txt with
    /// `fetcher` when it is not cached.
    pub async fn check(&self, fetcher: &Fetcher, url: &Url) -> Verdict {
        let Ok(robots_url) = url.join("/robots.txt") else {
            return Verdict::Allowed;
        };
        let entry = self.entry(fetcher, url, &robots_url).await;
        match entry.as_ref().map(|e| &e.rules) {
            None | Some(Rules::AllowAll) => Verdict::Allowed,
            Some(Rules::Parsed(r)) => {
                if r.allowed(url.as_str()) {
                    Verdict::Allowed
                } else {
                    Verdict::Disallowed {
                        robots_url: robots_url.to_string(),
                    }
                }
            }
            Some(Rules::Unreachable { error, retry_after }) => Verdict::Unreachable {
                robots_url: robots_url.to_string(),
                error: error.clone(),
                retry_after: *retry_after,
            },
        }
    }

    async fn fetch(&self, fetcher: &Fetcher, robots_url: &Url) -> Rules {
        let host = host_key(robots_url);
        match fetcher.fetch(robots_url, &Conditional::default()).await {
            Ok(resp) if resp.not_modified => Rules::AllowAll,
            Ok(resp) => match parse(&self.token, &resp.body) {
                Some(robot) => {
                    if let Some(p) = &self.polite {
                        let delay = robot
                            .delay
                            .filter(|d| d.is_finite() && *d > 0.0)
                            .map(|d| Duration::from_secs_f32(d.min(86_400.0)));
                        p.set_crawl_delay(&host, delay);
                    }
                    Rules::Parsed(Box::new(robot))
                }
                None => {
                    tracing::warn!(%host, "robots.txt does not parse; treating it as allowing everything.");
                    Rules::AllowAll
                }
            },
            Err(FetchError::HttpStatus {
                status,
                retry_after,
                ..
            }) if status == 429 || status >= 500 => Rules::Unreachable {
                error: format!("HTTP {status}"),
                retry_after,
            },
            Err(FetchError::HttpStatus { .. }) => Rules::AllowAll,
            Err(e) if e.is_transient() => Rules::Unreachable {
                error: e.to_string(),
                retry_after: None,
            },
            Err(_) => Rules::AllowAll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_token_is_the_first_word() {
        assert_eq!(
            product_token("pivotwatch/0.1 (+mailto:ops@example.org)"),
            "pivotwatch"
        );
        assert_eq!(product_token("Acme-Watch/2"), "acme-watch");
        assert_eq!(product_token("  "), "pivotwatch");
    }

    #[test]
    fn our_group_wins_over_the_star_group() {
        let txt = b"User-agent: *\nDisallow: /\n\nUser-agent: pivotwatch\nDisallow: /private\nCrawl-delay: 3\n";
        let r = parse("pivotwatch", txt).unwrap();
        assert!(r.allowed("http://x.example/public"));
        assert!(!r.allowed("http://x.example/private/a"));
        assert_eq!(r.delay, Some(3.0));
        let other = parse("otherbot", txt).unwrap();
        assert!(!other.allowed("http://x.example/public"));
        // Longest match wins; Allow wins a tie.
        let r = parse(
            "pivotwatch",
            b"User-agent: *\nDisallow: /shop\nAllow: /shop/catalogue\n",
        )
        .unwrap();
        assert!(r.allowed("http://x.example/shop/catalogue?page=2"));
        assert!(!r.allowed("http://x.example/shop/cart"));
    }

    #[test]
    fn only_the_first_500_kib_are_read() {
        let mut txt = b"User-agent: *\nDisallow: /a\n".to_vec();
        txt.extend(std::iter::repeat_n(b'#', MAX_ROBOTS_BYTES));
        txt.extend_from_slice(b"\nDisallow: /b\n");
        let r = parse("pivotwatch", &txt).unwrap();
        assert!(!r.allowed("http://x.example/a"));
        assert!(r.allowed("http://x.example/b"));
    }
}
