//! The private-address guard: which addresses and URLs pivotwatch may fetch.
//!
//! Three checkpoints share one predicate, [`is_public_ip`]:
//!
//! 1. [`check_url`] runs on the initial URL before anything is sent. It is the
//!    only check that sees IP-literal hosts (`http://127.0.0.1/`), because
//!    hyper's connector never hands those to the DNS resolver.
//! 2. [`GuardedResolver`] checks every address a host name resolves to, so the
//!    address that is checked is the address that is connected to (no DNS
//!    rebinding window).
//! 3. [`redirect_policy`] re-runs [`check_url`] on every redirect hop and
//!    enforces the hop limit.
//!
//! **Boundary:** DNS lookups through the system resolver; no other I/O.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use super::FetchError;

/// Returns `true` when `ip` is an ordinary public internet address.
///
/// Refused (returns `false`):
///
/// * IPv4: `0.0.0.0/8` (incl. unspecified), `10/8`, `100.64/10` (CGNAT),
///   `127/8`, `169.254/16`, `172.16/12`, `192.0.0/24`, `192.0.2/24`,
///   `192.88.99/24`, `192.168/16`, `198.18/15`, `198.51.100/24`,
///   `203.0.113/24`, `224/4` (multicast), `240/4` (incl. broadcast).
/// * IPv6: everything outside global unicast `2000::/3` (so `::`, `::1`,
///   ULA `fc00::/7`, link-local `fe80::/10`, multicast `ff00::/8`),
///   plus `2001::/23` (Teredo, benchmarking, ORCHID), `2001:db8::/32` and
///   `3fff::/20` (documentation).
/// * Addresses embedding IPv4 are unwrapped and judged by the IPv4 rules:
///   IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64
///   `64:ff9b::/96` and 6to4 `2002::/16`. So `::ffff:127.0.0.1` is refused
///   and `::ffff:8.8.8.8` is public.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", incl. 0.0.0.0
        || a == 10 // private
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 CGNAT
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local (cloud metadata lives here)
        || (a == 172 && (b & 0xf0) == 16) // 172.16/12 private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));

    // IPv4-mapped ::ffff:a.b.c.d
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // ::/96: unspecified, loopback and the deprecated IPv4-compatible form.
    if seg[..6] == [0; 6] {
        if ip.is_unspecified() || ip.is_loopback() {
            return false;
        }
        return is_public_v4(embedded(seg[6], seg[7]));
    }
    // NAT64 well-known prefix 64:ff9b::/96
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(seg[6], seg[7]));
    }
    // 6to4 2002:AABB:CCDD::/48 carries the IPv4 address in segments 1 and 2.
    if seg[0] == 0x2002 {
        return is_public_v4(embedded(seg[1], seg[2]));
    }
    // 2001::/23 IETF protocol assignments (Teredo 2001::/32, benchmarking,
    // ORCHID): not somewhere a registry page lives.
    if seg[0] == 0x2001 && seg[1] < 0x0200 {
        return false;
    }
    // Documentation prefixes.
    if (seg[0] == 0x2001 && seg[1] == 0x0db8) || (seg[0] == 0x3fff && seg[1] < 0x1000) {
        return false;
    }
    // Only global unicast 2000::/3 is public; this also refuses ULA fc00::/7,
    // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8,
    // discard 100::/64 and local-use NAT64 64:ff9b:1::/48.
    (seg[0] & 0xe000) == 0x2000
}

/// Why the guard refused a URL, an address or a redirect.
///
/// This travels inside `reqwest::Error` (from the resolver and the redirect
/// policy) and is turned into the matching [`FetchError`] variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuardError {
    /// Scheme other than http/https.
    Scheme { scheme: String },
    /// Host is, or resolves to, a non-public address.
    Private { host: String, addr: IpAddr },
    /// More redirect hops than allowed.
    TooManyRedirects { max: usize },
    /// URL not usable (no host, embedded credentials).
    Invalid { url: String, reason: &'static str },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Reuse the user-facing wording of the FetchError variant.
        fmt::Display::fmt(&FetchError::from(self.clone()), f)
    }
}

impl StdError for GuardError {}

impl From<GuardError> for FetchError {
    fn from(err: GuardError) -> Self {
        match err {
            GuardError::Scheme { scheme } => FetchError::UnsupportedScheme { scheme },
            GuardError::Private { host, addr } => FetchError::PrivateAddress { host, addr },
            GuardError::TooManyRedirects { max } => FetchError::TooManyRedirects { max },
            GuardError::Invalid { url, reason } => FetchError::InvalidUrl {
                url,
                reason: reason.to_owned(),
            },
        }
    }
}

/// The pre-flight gate: checks a URL before it is requested.
///
/// Refuses schemes other than `http`/`https`, URLs without a host, URLs with
/// a username or password, and (unless `allow_private_addresses`) IP-literal
/// hosts that are not public (see [`is_public_ip`]). Host names are checked
/// later, on the addresses they resolve to. [`crate::fetch::Fetcher::fetch`]
/// runs this on the initial URL and on every redirect hop; config validation
/// can call it too, to reject a bad source URL early.
pub fn check_url(url: &Url, allow_private_addresses: bool) -> Result<(), FetchError> {
    check_url_inner(url, allow_private_addresses).map_err(FetchError::from)
}

pub(crate) fn check_url_inner(url: &Url, allow_private: bool) -> Result<(), GuardError> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(GuardError::Scheme {
            scheme: scheme.to_owned(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::Invalid {
            url: redacted(url),
            reason: "it contains a username or password, which pivotwatch does not send",
        });
    }
    let ip = match url.host() {
        None => {
            return Err(GuardError::Invalid {
                url: redacted(url),
                reason: "it has no host",
            });
        }
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    if !allow_private && !is_public_ip(ip) {
        return Err(GuardError::Private {
            host: url.host_str().unwrap_or_default().to_owned(),
            addr: ip,
        });
    }
    Ok(())
}

/// The URL without userinfo, query or fragment: safe for errors and logs
/// (registry API keys often travel in the query string).
pub(crate) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    // These fail only for cannot-be-a-base URLs, which have no userinfo.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Decides one redirect hop. `previous` counts the URLs already requested in
/// this chain (the initial URL included), as `reqwest::redirect::Attempt`
/// reports them, so `max = 5` follows five redirects and refuses the sixth.
pub(crate) fn check_hop(
    next: &Url,
    previous: usize,
    max: usize,
    allow_private: bool,
) -> Result<(), GuardError> {
    if previous > max {
        return Err(GuardError::TooManyRedirects { max });
    }
    check_url_inner(next, allow_private)
}

/// A redirect policy that enforces the hop limit and re-runs the URL gate on
/// every hop (IP-literal targets would otherwise skip the resolver).
pub(crate) fn redirect_policy(max: usize, allow_private: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        match check_hop(attempt.url(), attempt.previous().len(), max, allow_private) {
            Ok(()) => attempt.follow(),
            Err(err) => attempt.error(err),
        }
    })
}

/// A DNS resolver that refuses host names resolving to non-public addresses.
///
/// The name is refused when **any** of its addresses is non-public, so a
/// record set mixing a public and a private address cannot be used to reach
/// the private one. With `allow_private` it resolves normally.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no addresses"),
                )
                .into());
            }
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                    return Err(GuardError::Private {
                        host,
                        addr: bad.ip(),
                    }
                    .into());
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn hop_limit_counts_like_policy_limited() {
        let next = url("http://93.184.215.14/next");
        // previous = 1 on the first redirect (only the initial URL so far).
        assert_eq!(check_hop(&next, 1, 1, false), Ok(()));
        assert_eq!(
            check_hop(&next, 2, 1, false),
            Err(GuardError::TooManyRedirects { max: 1 })
        );
        assert_eq!(
            check_hop(&next, 1, 0, false),
            Err(GuardError::TooManyRedirects { max: 0 })
        );
    }

    #[test]
    fn hop_to_private_literal_refused_unless_allowed() {
        let meta = url("http://169.254.169.254/latest/meta-data/");
        assert_eq!(
            check_hop(&meta, 1, 5, false),
            Err(GuardError::Private {
                host: "169.254.169.254".into(),
                addr: "169.254.169.254".parse().unwrap()
            })
        );
        assert_eq!(check_hop(&meta, 1, 5, true), Ok(()));
        let mapped = url("http://[::ffff:10.0.0.1]/");
        assert!(matches!(
            check_hop(&mapped, 1, 5, false),
            Err(GuardError::Private { .. })
        ));
    }

    #[test]
    fn hop_to_other_scheme_refused_even_when_private_allowed() {
        for target in [
            "file:///etc/passwd",
            "ftp://example.org/",
            "gopher://x/",
            "data:text/plain,hi",
        ] {
            let err = check_hop(&url(target), 1, 5, true).unwrap_err();
            assert!(
                matches!(err, GuardError::Scheme { .. }),
                "{target}: {err:?}"
            );
        }
    }

    #[test]
    fn numeric_host_spellings_are_normalised_then_refused() {
        for s in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://[::1]/",
        ] {
            let err = check_url_inner(&url(s), false).unwrap_err();
            assert!(matches!(err, GuardError::Private { .. }), "{s}: {err:?}");
        }
    }

    #[test]
    fn credentials_refused_and_not_echoed() {
        let err =
            check_url_inner(&url("http://bob:hunter2@example.org/?key=s3cret"), true).unwrap_err();
        let GuardError::Invalid { url, .. } = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(url, "http://example.org/");
        assert!(!err.to_string().contains("hunter2"));
    }
}
