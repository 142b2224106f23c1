//! [`FetchError`]: one variant per way a fetch can fail.

use std::net::IpAddr;
use std::time::Duration;

use bytesize::ByteSize;

/// Why a fetch failed.
///
/// Each message says what happened and what to do next. The messages can
/// change over time, so match on the variant, not on the text. Wrapped
/// `reqwest` errors are kept as `#[source]` and never repeated in the
/// message; print the chain with [`crate::text::chain`] to see them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL cannot be fetched as written: it has no host or carries a
    /// username or password.
    #[error("invalid URL {url}: {reason}; fix the source URL")]
    InvalidUrl {
        /// The URL, without credentials, query or fragment.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URL, or a redirect it followed, uses a scheme other than http or https.
    #[error(
        "unsupported URL scheme `{scheme}`: only http and https are fetched; \
         use an http(s) URL for this source (or check where it redirects)"
    )]
    UnsupportedScheme {
        /// The refused scheme, e.g. `file`.
        scheme: String,
    },

    /// The host is, or resolves to, a loopback, private, link-local or
    /// otherwise non-public address (see [`crate::fetch::is_public_ip`]).
    #[error(
        "refusing to connect to {host} ({addr}): not a public internet address; \
         set `allow_private_addresses = true` in [http] for sources on your own network"
    )]
    PrivateAddress {
        /// The host as written in the URL (or the redirect target).
        host: String,
        /// The refused address.
        addr: IpAddr,
    },

    /// The host name could not be resolved.
    #[error(
        "could not resolve {host}; check the host name in the source URL and this machine's DNS"
    )]
    Dns {
        /// The host that failed to resolve.
        host: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The TCP or TLS connection could not be established.
    #[error(
        "could not connect to {host}; the site may be down, unreachable from here \
         or presenting a bad certificate; the check will be retried"
    )]
    Connect {
        /// The host that refused or failed the connection.
        host: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// Connecting, or the whole request including the body, took too long.
    #[error("{}", timeout_message(host, *limit, *connecting))]
    Timeout {
        /// The host that was too slow.
        host: String,
        /// The limit that was hit.
        limit: Duration,
        /// `true` when the connect timeout fired, `false` for the total timeout.
        connecting: bool,
    },

    /// The redirect chain was longer than `max_redirects`.
    #[error(
        "more than {max} redirects; point the source at the final URL \
         or raise max_redirects"
    )]
    TooManyRedirects {
        /// The configured redirect limit.
        max: usize,
    },

    /// The (decompressed) response body is larger than `max_body`.
    #[error(
        "response body exceeds the {} cap (max_body in [http]); raise it or select a smaller page",
        ByteSize(*cap)
    )]
    TooLarge {
        /// The cap in bytes.
        cap: u64,
    },

    /// The server answered with a status other than 2xx or 304.
    #[error("{}", status_message(*status, *retry_after, *blocked))]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The server's `Retry-After`, as a delay from now.
        retry_after: Option<Duration>,
        /// The status was 401/403/429/503 and the body looks like a block
        /// page or bot challenge.
        blocked: bool,
    },

    /// The body could not be read to the end (connection dropped, corrupt
    /// compressed data).
    #[error(
        "failed to read the response body from {host}; the connection dropped \
         or the compressed data is corrupt; the check will be retried"
    )]
    Body {
        /// The host the body came from.
        host: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// Any other request failure (e.g. a malformed HTTP response).
    #[error("request to {host} failed; the server sent something that is not valid HTTP")]
    Request {
        /// The host the request went to.
        host: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The HTTP client could not be built from the options.
    #[error(
        "cannot build the HTTP client; check user_agent in [http] (it must be a valid header value)"
    )]
    Client {
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl FetchError {
    /// Whether trying again later may succeed: timeouts, connection
    /// failures, bodies cut off mid-read, and 5xx/408/429 statuses. A block
    /// page or bot challenge is not transient: retrying sooner only makes it
    /// worse.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout { .. } | FetchError::Connect { .. } | FetchError::Body { .. } => {
                true
            }
            FetchError::HttpStatus {
                status, blocked, ..
            } => !blocked && (*status >= 500 || *status == 408 || *status == 429),
            _ => false,
        }
    }

    /// Whether the site answered with a block page or bot challenge.
    pub fn is_blocked(&self) -> bool {
        matches!(self, FetchError::HttpStatus { blocked: true, .. })
    }

    /// The server's `Retry-After` delay, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::HttpStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn timeout_message(host: &str, limit: Duration, connecting: bool) -> String {
    let limit = humantime::format_duration(limit);
    if connecting {
        format!(
            "could not connect to {host} within {limit}; the host may be down or \
             dropping traffic; the check will be retried"
        )
    } else {
        format!(
            "{host} did not finish responding within {limit} (timeout in [http]); \
             the server is slow: raise timeout or retry later"
        )
    }
}

fn status_message(status: u16, retry_after: Option<Duration>, blocked: bool) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("unknown status");
    let wait = retry_after
        .map(|d| format!(" (Retry-After {})", humantime::format_duration(d)))
        .unwrap_or_default();
    let advice = if blocked {
        "the site served a block page or bot challenge; lower the request rate for this host \
         (per_host_interval) or drop the source"
    } else {
        match status {
            429 => {
                "too many requests; the check will back off, raise per_host_interval for this host"
            }
            401 | 403 => {
                "the site refuses this request; check whether the page needs a login or blocks crawlers"
            }
            404 | 410 => "the page is gone; update the source URL",
            500.. => "server error, usually temporary; the check will be retried",
            _ => "check the source URL",
        }
    };
    format!("server answered HTTP {status} {reason}{wait}; {advice}")
}
