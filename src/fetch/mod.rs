//! The HTTP fetch layer: one guarded client for every request pivotwatch makes.
//!
//! [`Fetcher::fetch`] applies the safety defaults of DESIGN.md §8:
//!
//! * a connect timeout and a total timeout (which covers the body);
//! * a body cap counted on decompressed bytes while streaming, and an early
//!   refusal when `Content-Length` already exceeds it;
//! * at most `max_redirects` redirects, http and https only, checked on the
//!   initial URL and on every hop;
//! * the private-address guard ([`is_public_ip`]) on IP-literal hosts before
//!   sending, on every resolved address (custom resolver), and on every
//!   redirect hop, unless `allow_private_addresses` is set;
//! * no proxies: environment proxies would resolve names for us and bypass
//!   the guard;
//! * conditional GET (`If-None-Match`, `If-Modified-Since`), charset
//!   decoding ([`decode_body`]) and block-page detection ([`looks_blocked`]).
//!
//! **Boundary:** network through `reqwest` only. Never parses HTML beyond
//! charset sniffing; never touches the store or mail.

mod charset;
mod error;
mod guard;
pub mod polite;
pub mod robots;
mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

pub use charset::decode_body;
pub use error::FetchError;
pub use guard::{check_url, is_public_ip};
pub use polite::Politeness;
pub use robots::Robots;
pub use status::{block_reason, looks_blocked, parse_retry_after};

/// Default `User-Agent`: identifies the crawler and where to learn about it.
pub const DEFAULT_USER_AGENT: &str = "pivotwatch/0.1 (+https://github.com/pivotwatch)";
/// Default connect timeout. [default: 10s]
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default total timeout, body included. [default: 30s]
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default body cap in (decompressed) bytes. [default: 8 MiB]
pub const DEFAULT_MAX_BODY: u64 = 8 * 1024 * 1024;
/// Default redirect limit. [default: 5]
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// How much of a refusal (401/403/429/503) body is read to look for a block page.
const BLOCK_SNIFF_LIMIT: u64 = 256 * 1024;
/// Largest buffer reserved up front from a `Content-Length`.
const MAX_PREALLOCATION: u64 = 1024 * 1024;
/// Sent with every request; registries serve HTML or JSON.
const ACCEPT: &str = "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8";

/// Limits and identity for every request a [`Fetcher`] makes (`[http]` in
/// `pivotwatch.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// `User-Agent` header; say who runs the crawler and how to reach them.
    pub user_agent: String,
    /// Limit for establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit for the whole request, redirects and body included, so a
    /// server trickling bytes cannot hold a worker forever.
    pub timeout: Duration,
    /// Largest body accepted, counted after decompression so a small gzip
    /// bomb cannot blow up memory.
    pub max_body: u64,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Allow loopback, private and other non-public addresses. Off by
    /// default because source URLs come from analysts, and a URL pointing at
    /// the cloud metadata service or an internal admin page must not be
    /// fetched. Turn it on only for sources on your own network (and tests).
    pub allow_private_addresses: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            allow_private_addresses: false,
        }
    }
}

/// Validators from the previous check, for a conditional GET.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Conditional {
    /// Sent as `If-None-Match`.
    pub etag: Option<String>,
    /// Sent as `If-Modified-Since`.
    pub last_modified: Option<String>,
}

/// Credentials sent with one request. They never become part of the URL
/// a response, an error or a log line reports, and `Debug` hides them.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic with this user name and an empty password (Companies
    /// House sends its API key so).
    Basic {
        /// The user name (the API key).
        user: String,
    },
    /// A query parameter added to the request only (OpenCorporates'
    /// `api_token`); the URL reported back is the one without it.
    Query {
        /// Parameter name.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Basic { .. } => "Auth::Basic([redacted])",
            Auth::Query { .. } => "Auth::Query([redacted])",
        })
    }
}

/// A successful (2xx or 304) response, body read and decoded.
#[derive(Clone)]
pub struct FetchResponse {
    /// Final URL, after redirects.
    pub url: Url,
    /// HTTP status code (2xx, or 304).
    pub status: u16,
    /// The `Content-Type` header, as sent.
    pub content_type: Option<String>,
    /// The raw body, decompressed; empty for 304.
    pub body: Vec<u8>,
    /// The body decoded to text with [`decode_body`]; empty for 304.
    pub text: String,
    /// Name of the encoding used to decode `text` (e.g. `windows-1256`).
    pub charset: &'static str,
    /// `ETag` to store for the next conditional GET. On a 304 without one,
    /// the validator that was sent.
    pub etag: Option<String>,
    /// `Last-Modified` to store for the next conditional GET. On a 304
    /// without one, the validator that was sent.
    pub last_modified: Option<String>,
    /// The server answered 304 Not Modified: the previous snapshot still holds.
    pub not_modified: bool,
    /// The response headers kept as evidence ([`EVIDENCE_HEADERS`]), names
    /// in lowercase, values as sent (those that are not visible ASCII are
    /// left out).
    pub headers: BTreeMap<String, String>,
    /// The address of the server that answered, when the connection tells.
    pub remote_addr: Option<SocketAddr>,
    /// When the request was sent.
    pub started_at: DateTime<Utc>,
    /// When the body was read to its end.
    pub finished_at: DateTime<Utc>,
}

impl FetchResponse {
    /// The evidence kept of this response, requested as `requested`, whose
    /// body starts at `offset` of the stored body.
    pub fn evidence(&self, requested: &Url, offset: usize) -> crate::record::ResponseMeta {
        crate::record::ResponseMeta {
            requested_url: requested.to_string(),
            final_url: self.url.to_string(),
            status: self.status,
            headers: self.headers.clone(),
            remote_addr: self.remote_addr.map(|a| a.to_string()),
            started_at: self.started_at,
            finished_at: self.finished_at,
            body_offset: offset as u64,
            body_len: self.body.len() as u64,
            body_blob: None,
        }
    }
}

/// The response headers a [`FetchResponse`] keeps as evidence.
pub const EVIDENCE_HEADERS: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::DATE,
    header::LAST_MODIFIED,
    header::ETAG,
    header::SERVER,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
];

impl std::fmt::Debug for FetchResponse {
    // Bodies can be megabytes; show their size, not their bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchResponse")
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("charset", &self.charset)
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("not_modified", &self.not_modified)
            .field("headers", &self.headers)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// The guarded HTTP client. Cheap to clone (one `Arc`); share one per daemon.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    opts: FetchOptions,
    /// Per-host limits every request waits for (the daemon's); `None`
    /// for `once` and `probe`.
    polite: Option<Arc<Politeness>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// reqwest is built with `rustls-no-provider`, so a rustls crypto provider
/// must be the process default before a client is built, or reqwest panics.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means some provider is already the process default (another
        // part of the program installed one); reqwest uses that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Fetcher {
    /// Builds the client. Fails only when the options cannot make a valid
    /// client (e.g. a `user_agent` that is not a valid header value).
    pub fn new(opts: FetchOptions) -> Result<Self, FetchError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(opts.user_agent.as_str())
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .redirect(guard::redirect_policy(
                opts.max_redirects,
                opts.allow_private_addresses,
            ))
            .dns_resolver(guard::GuardedResolver {
                allow_private: opts.allow_private_addresses,
            })
            .no_proxy()
            .referer(false)
            .build()
            .map_err(|source| FetchError::Client { source })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                opts,
                polite: None,
            }),
        })
    }

    /// The same client, with every request waiting for its host's turn
    /// under `polite` (see [`polite`]).
    pub fn with_politeness(&self, polite: Arc<Politeness>) -> Fetcher {
        Fetcher {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                opts: self.inner.opts.clone(),
                polite: Some(polite),
            }),
        }
    }

    /// The options this fetcher was built with.
    pub fn options(&self) -> &FetchOptions {
        &self.inner.opts
    }

    /// GETs `url`, following redirects, and returns the capped, decoded body.
    ///
    /// Returns `Ok` for 2xx and for 304 (`not_modified = true`, empty body);
    /// every other status is [`FetchError::HttpStatus`]. Validators in `cond`
    /// are sent as `If-None-Match` / `If-Modified-Since` (values that are not
    /// valid header text are skipped). Emits one debug event per request with
    /// the status and byte count; the URL is logged without its query string.
    pub async fn fetch(&self, url: &Url, cond: &Conditional) -> Result<FetchResponse, FetchError> {
        self.fetch_with(url, cond, &Auth::None).await
    }

    /// [`Fetcher::fetch`] with credentials (see [`Auth`]): the same
    /// politeness, logging and errors, none of which shows them.
    pub async fn fetch_with(
        &self,
        url: &Url,
        cond: &Conditional,
        auth: &Auth,
    ) -> Result<FetchResponse, FetchError> {
        let opts = &self.inner.opts;
        let log_url = guard::redacted(url);
        let _turn = match &self.inner.polite {
            Some(p) => Some(p.acquire(url).await),
            None => None,
        };
        let started = Instant::now();
        let result =
            match tokio::time::timeout(opts.timeout, self.fetch_inner(url, cond, auth)).await {
                Ok(result) => result,
                // Belt and braces: reqwest's own total timeout should fire first.
                Err(_elapsed) => Err(FetchError::Timeout {
                    host: host_of(url),
                    limit: opts.timeout,
                    connecting: false,
                }),
            };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(resp) => tracing::debug!(
                url = %log_url,
                status = resp.status,
                bytes = resp.body.len(),
                elapsed_ms,
                "Fetched."
            ),
            Err(FetchError::HttpStatus {
                status, blocked, ..
            }) => tracing::debug!(
                url = %log_url,
                status,
                blocked,
                elapsed_ms,
                "Fetch refused by status."
            ),
            Err(err) => tracing::debug!(url = %log_url, error = %err, elapsed_ms, "Fetch failed."),
        }
        if let Some(p) = &self.inner.polite {
            p.observe(url, &result, started.elapsed());
        }
        result
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        cond: &Conditional,
        auth: &Auth,
    ) -> Result<FetchResponse, FetchError> {
        let opts = &self.inner.opts;
        // IP-literal hosts never reach the resolver: check them here.
        check_url(url, opts.allow_private_addresses)?;
        let host = host_of(url);
        let started_at = Utc::now();

        let target = match auth {
            Auth::Query { name, value } => {
                let mut u = url.clone();
                u.query_pairs_mut().append_pair(name, value);
                u
            }
            _ => url.clone(),
        };
        let mut request = self.inner.client.get(target).header(header::ACCEPT, ACCEPT);
        if let Auth::Basic { user } = auth {
            request = request.basic_auth(user, Some(""));
        }
        if let Some(value) = cond.etag.as_deref().and_then(valid_header) {
            request = request.header(header::IF_NONE_MATCH, value);
        }
        if let Some(value) = cond.last_modified.as_deref().and_then(valid_header) {
            request = request.header(header::IF_MODIFIED_SINCE, value);
        }

        // reqwest's errors print their URL: drop it when it holds a token.
        let hide = |e: reqwest::Error| match auth {
            Auth::Query { .. } => e.without_url(),
            _ => e,
        };
        let mut resp = request
            .send()
            .await
            .map_err(|e| map_reqwest_error(hide(e), &host, opts))?;
        let status = resp.status().as_u16();
        let final_url = match auth {
            Auth::Query { name, .. } => without_param(resp.url(), name),
            _ => resp.url().clone(),
        };
        let final_host = host_of(&final_url);
        let headers = resp.headers();
        let content_type = header_string(headers, header::CONTENT_TYPE);
        let etag = header_string(headers, header::ETAG);
        let last_modified = header_string(headers, header::LAST_MODIFIED);
        let kept: BTreeMap<String, String> = EVIDENCE_HEADERS
            .iter()
            .filter_map(|name| {
                let v = header_string(headers, name.clone())?;
                Some((name.as_str().to_owned(), v))
            })
            .collect();
        let remote_addr = resp.remote_addr();

        if status == 304 {
            return Ok(FetchResponse {
                url: final_url,
                status,
                content_type,
                body: Vec::new(),
                text: String::new(),
                charset: encoding_rs::UTF_8.name(),
                etag: etag.or_else(|| cond.etag.clone()),
                last_modified: last_modified.or_else(|| cond.last_modified.clone()),
                not_modified: true,
                headers: kept,
                remote_addr,
                started_at,
                finished_at: Utc::now(),
            });
        }

        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            // A redirect came back unfollowed: reqwest only hands the policy
            // targets that form a valid `http::Uri`, so `file:///…` and
            // unparseable Locations end up here. Say why.
            if let Some(location) = header_string(resp.headers(), header::LOCATION) {
                match final_url.join(&location) {
                    Ok(target) => check_url(&target, opts.allow_private_addresses)?,
                    Err(_) => {
                        return Err(FetchError::InvalidUrl {
                            url: location.chars().take(200).collect(),
                            reason: "the server redirected to something that is not a valid URL"
                                .to_owned(),
                        });
                    }
                }
            }
        }

        if !(200..300).contains(&status) {
            let retry_after = header_string(resp.headers(), header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(&v, SystemTime::now()));
            let blocked = if matches!(status, 401 | 403 | 429 | 503) {
                let prefix = read_prefix(&mut resp, opts.max_body.min(BLOCK_SNIFF_LIMIT)).await;
                let (text, _) = decode_body(&prefix, content_type.as_deref());
                status::has_block_marker(&text)
            } else {
                false
            };
            return Err(FetchError::HttpStatus {
                status,
                retry_after,
                blocked,
            });
        }

        // With compression on, reqwest drops Content-Length, so this only
        // catches identity bodies; the streaming cap catches the rest.
        if resp.content_length().is_some_and(|len| len > opts.max_body) {
            return Err(FetchError::TooLarge { cap: opts.max_body });
        }
        let body = read_capped(&mut resp, opts.max_body)
            .await
            .map_err(|e| match e {
                ReadError::Reqwest(r) => ReadError::Reqwest(hide(r)),
                other => other,
            })
            .map_err(|e| e.into_fetch_error(&final_host, opts))?;
        let (text, encoding) = decode_body(&body, content_type.as_deref());
        Ok(FetchResponse {
            url: final_url,
            status,
            content_type,
            body,
            text,
            charset: encoding.name(),
            etag,
            last_modified,
            not_modified: false,
            headers: kept,
            remote_addr,
            started_at,
            finished_at: Utc::now(),
        })
    }
}

/// A long-lived response read as it arrives (a streaming API): no total
/// timeout, a limit on the silence between chunks instead.
pub struct ByteStream {
    resp: reqwest::Response,
    host: String,
    opts: FetchOptions,
    hide_url: bool,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ByteStream {
    /// The next chunk; `Ok(None)` when the server ended the response.
    /// Silence longer than `idle` is [`FetchError::Timeout`].
    pub async fn next_chunk(&mut self, idle: Duration) -> Result<Option<Vec<u8>>, FetchError> {
        match tokio::time::timeout(idle, self.resp.chunk()).await {
            Err(_) => Err(FetchError::Timeout {
                host: self.host.clone(),
                limit: idle,
                connecting: false,
            }),
            Ok(Ok(c)) => Ok(c.map(|b| b.to_vec())),
            Ok(Err(e)) => {
                let e = if self.hide_url { e.without_url() } else { e };
                Err(map_reqwest_error(e, &self.host, &self.opts))
            }
        }
    }
}

impl Fetcher {
    /// Opens a streaming response (`GET`, with credentials): the address
    /// guard applies, politeness does not (one connection, held open).
    /// A status other than 2xx is [`FetchError::HttpStatus`] (e.g. `416`).
    pub async fn open_stream(&self, url: &Url, auth: &Auth) -> Result<ByteStream, FetchError> {
        let opts = &self.inner.opts;
        check_url(url, opts.allow_private_addresses)?;
        let host = host_of(url);
        let target = match auth {
            Auth::Query { name, value } => {
                let mut u = url.clone();
                u.query_pairs_mut().append_pair(name, value);
                u
            }
            _ => url.clone(),
        };
        let hide_url = matches!(auth, Auth::Query { .. });
        // Effectively no total timeout: the stream is meant to last.
        let mut request = self
            .inner
            .client
            .get(target)
            .timeout(Duration::from_secs(365 * 24 * 3600));
        if let Auth::Basic { user } = auth {
            request = request.basic_auth(user, Some(""));
        }
        let resp =
            match tokio::time::timeout(opts.connect_timeout + opts.timeout, request.send()).await {
                Err(_) => {
                    return Err(FetchError::Timeout {
                        host,
                        limit: opts.connect_timeout + opts.timeout,
                        connecting: true,
                    });
                }
                Ok(r) => r.map_err(|e| {
                    let e = if hide_url { e.without_url() } else { e };
                    map_reqwest_error(e, &host, opts)
                })?,
            };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let retry_after = header_string(resp.headers(), header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(&v, SystemTime::now()));
            return Err(FetchError::HttpStatus {
                status,
                retry_after,
                blocked: false,
            });
        }
        tracing::debug!(url = %guard::redacted(url), status, "Stream opened.");
        Ok(ByteStream {
            resp,
            host,
            opts: opts.clone(),
            hide_url,
        })
    }
}

enum ReadError {
    TooLarge { cap: u64 },
    Reqwest(reqwest::Error),
}

impl ReadError {
    fn into_fetch_error(self, host: &str, opts: &FetchOptions) -> FetchError {
        match self {
            ReadError::TooLarge { cap } => FetchError::TooLarge { cap },
            ReadError::Reqwest(err) => map_reqwest_error(err, host, opts),
        }
    }
}

/// Reads the whole body, failing as soon as it grows past `cap`.
/// `chunk()` yields decompressed bytes, so the cap holds against gzip bombs.
async fn read_capped(resp: &mut reqwest::Response, cap: u64) -> Result<Vec<u8>, ReadError> {
    let reserve = resp
        .content_length()
        .unwrap_or(0)
        .min(cap)
        .min(MAX_PREALLOCATION);
    let mut body = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Reqwest)? {
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > cap {
            return Err(ReadError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads at most `limit` bytes of the body; read errors just end the prefix.
async fn read_prefix(resp: &mut reqwest::Response, limit: u64) -> Vec<u8> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// Sorts a reqwest error into the matching [`FetchError`] variant. Guard
/// refusals (from the resolver or the redirect policy) travel inside the
/// error chain and are recognised first.
fn map_reqwest_error(err: reqwest::Error, fallback_host: &str, opts: &FetchOptions) -> FetchError {
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(guard) = cause.downcast_ref::<guard::GuardError>() {
            return guard.clone().into();
        }
        source = cause.source();
    }
    let host = err
        .url()
        .and_then(Url::host_str)
        .unwrap_or(fallback_host)
        .to_owned();
    if err.is_timeout() {
        let connecting = err.is_connect();
        FetchError::Timeout {
            host,
            limit: if connecting {
                opts.connect_timeout
            } else {
                opts.timeout
            },
            connecting,
        }
    } else if err.is_dns() {
        FetchError::Dns { host, source: err }
    } else if err.is_connect() {
        FetchError::Connect { host, source: err }
    } else if err.is_body() || err.is_decode() {
        FetchError::Body { host, source: err }
    } else {
        FetchError::Request { host, source: err }
    }
}

/// `url` without the query parameter `name` (a token added by [`Auth::Query`]).
fn without_param(url: &Url, name: &str) -> Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        out.set_query(None);
    } else {
        out.query_pairs_mut().clear().extend_pairs(kept);
    }
    out
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn valid_header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}
