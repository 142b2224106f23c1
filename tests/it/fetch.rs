//! Tests for `pivotwatch::fetch` against a real axum server on 127.0.0.1.
//!
//! Nothing here touches the internet: every request goes to a loopback
//! server started by the test itself.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use pivotwatch::fetch::{
    Conditional, FetchError, FetchOptions, Fetcher, check_url, decode_body, is_public_ip,
    looks_blocked, parse_retry_after,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

// ---------------------------------------------------------------------------
// Fixture server
// ---------------------------------------------------------------------------

/// What the server saw: one entry per request (path and headers).
#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    requests: Mutex<Vec<(String, HeaderMap)>>,
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Server {
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }

    /// Headers of the last request to `path`.
    fn headers_for(&self, path: &str) -> HeaderMap {
        let requests = self.seen.requests.lock().unwrap();
        requests
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| panic!("no request to {path}"))
    }
}

const GZIP_BOMB_INFLATED: usize = 8 * 1024 * 1024;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

async fn record(State(seen): State<Arc<Seen>>, req: Request, next: Next) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    seen.requests
        .lock()
        .unwrap()
        .push((req.uri().path().to_owned(), req.headers().clone()));
    next.run(req).await
}

async fn redirect_chain(Path(n): Path<u32>) -> Response {
    if n == 0 {
        respond(200, &[("content-type", "text/plain")], "end of chain")
    } else {
        let next = format!("/r/{}", n - 1);
        respond(302, &[("location", next.as_str())], Body::empty())
    }
}

async fn etag(headers: HeaderMap) -> Response {
    let validators = [
        ("etag", "\"v1\""),
        ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ];
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some("\"v1\"") {
        respond(304, &validators, Body::empty())
    } else {
        let mut headers = validators.to_vec();
        headers.push(("content-type", "text/html; charset=utf-8"));
        respond(200, &headers, "<p>version one</p>")
    }
}

const CHALLENGE_PAGE: &str = r#"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>
<body><h1>Please verify you are a human</h1>
<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script></body></html>"#;

async fn start() -> Server {
    let seen = Arc::new(Seen::default());
    let gzip_bomb = gzip(&vec![0u8; GZIP_BOMB_INFLATED]);
    let gzip_small = gzip("<p>Société Générale</p>".as_bytes());

    let app = Router::new()
        .route(
            "/html",
            get(|| async {
                respond(
                    200,
                    &[("content-type", "text/html; charset=utf-8")],
                    "<html><head><title>Acme Métaux</title></head><body>ok</body></html>",
                )
            }),
        )
        .route(
            "/big",
            get(|| async { respond(200, &[("content-type", "text/plain")], vec![b'a'; 4096]) }),
        )
        .route(
            "/chunked",
            get(|| async {
                // from_stream has no size hint, so hyper sends it chunked
                // without a Content-Length.
                let stream = Body::from(vec![b'a'; 4 * 1024 * 1024]).into_data_stream();
                respond(200, &[("content-type", "text/plain")], Body::from_stream(stream))
            }),
        )
        .route(
            "/gzip-bomb",
            get(move || async move {
                respond(
                    200,
                    &[("content-type", "text/html"), ("content-encoding", "gzip")],
                    gzip_bomb,
                )
            }),
        )
        .route(
            "/gzip-small",
            get(move || async move {
                respond(
                    200,
                    &[
                        ("content-type", "text/html; charset=utf-8"),
                        ("content-encoding", "gzip"),
                    ],
                    gzip_small,
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                respond(200, &[], "too late")
            }),
        )
        .route("/r/{n}", get(redirect_chain))
        .route(
            "/to-file",
            get(|| async { respond(302, &[("location", "file:///etc/passwd")], Body::empty()) }),
        )
        .route(
            "/to-ftp",
            get(|| async { respond(301, &[("location", "ftp://ftp.example.org/pub/")], Body::empty()) }),
        )
        .route(
            "/cp1252",
            get(|| async {
                respond(
                    200,
                    &[("content-type", "text/html; charset=windows-1252")],
                    &b"<p>Soci\xe9t\xe9 M\xe9taux</p>"[..],
                )
            }),
        )
        .route(
            "/cp1256",
            get(|| async {
                // "سلام" = D3 E1 C7 E3 in windows-1256.
                respond(
                    200,
                    &[("content-type", "text/html; charset=windows-1256")],
                    &b"<p>\xd3\xe1\xc7\xe3</p>"[..],
                )
            }),
        )
        .route(
            "/cp1251-meta",
            get(|| async {
                let mut body = b"<html><head><meta charset=\"windows-1251\"><title>".to_vec();
                body.extend_from_slice(&encoding_rs::WINDOWS_1251.encode("Микроконтроллер").0);
                body.extend_from_slice(b"</title></head></html>");
                respond(200, &[("content-type", "text/html")], body)
            }),
        )
        .route(
            "/latin1-equiv",
            get(|| async {
                let mut body = b"<HTML><HEAD><META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=ISO-8859-1\"></HEAD><BODY>".to_vec();
                body.extend_from_slice(b"Soci\xe9t\xe9 G\xe9n\xe9rale \xa9");
                body.extend_from_slice(b"</BODY></HTML>");
                respond(200, &[("content-type", "text/html")], body)
            }),
        )
        .route(
            "/bom",
            get(|| async {
                let mut body = b"\xef\xbb\xbf".to_vec();
                body.extend_from_slice("Zürich".as_bytes());
                respond(200, &[("content-type", "text/plain")], body)
            }),
        )
        .route("/etag", get(etag))
        .route(
            "/challenge",
            get(|| async { respond(403, &[("content-type", "text/html; charset=utf-8")], CHALLENGE_PAGE) }),
        )
        .route(
            "/forbidden",
            get(|| async { respond(403, &[("content-type", "text/plain")], "You may not read this file.") }),
        )
        .route(
            "/maintenance",
            get(|| async {
                respond(
                    503,
                    &[("content-type", "text/plain"), ("retry-after", "120")],
                    "Down for maintenance.",
                )
            }),
        )
        .layer(middleware::from_fn_with_state(seen.clone(), record));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, seen }
}

/// A fetcher that may talk to the loopback server.
fn loopback_fetcher(tweak: impl FnOnce(&mut FetchOptions)) -> Fetcher {
    let mut opts = FetchOptions {
        allow_private_addresses: true,
        ..FetchOptions::default()
    };
    tweak(&mut opts);
    Fetcher::new(opts).unwrap()
}

async fn fetch_plain(
    fetcher: &Fetcher,
    url: &Url,
) -> Result<pivotwatch::fetch::FetchResponse, FetchError> {
    fetcher.fetch(url, &Conditional::default()).await
}

/// The raw response head for `path`, to check what the server put on the wire.
async fn raw_head(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before end of head");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

// ---------------------------------------------------------------------------
// Options and client
// ---------------------------------------------------------------------------

#[test]
fn default_options_match_design() {
    let opts = FetchOptions::default();
    assert_eq!(
        opts.user_agent,
        "pivotwatch/0.1 (+https://github.com/pivotwatch)"
    );
    assert_eq!(opts.connect_timeout, Duration::from_secs(10));
    assert_eq!(opts.timeout, Duration::from_secs(30));
    assert_eq!(opts.max_body, 8 * 1024 * 1024);
    assert_eq!(opts.max_redirects, 5);
    assert!(!opts.allow_private_addresses);
}

#[test]
fn fetcher_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Fetcher>();
    let fetcher = Fetcher::new(FetchOptions::default()).unwrap();
    let clone = fetcher.clone();
    assert_eq!(clone.options().max_redirects, 5);
}

#[test]
fn bad_user_agent_is_a_client_error() {
    let err = Fetcher::new(FetchOptions {
        user_agent: "bad\nagent".into(),
        ..FetchOptions::default()
    })
    .unwrap_err();
    assert!(matches!(err, FetchError::Client { .. }), "{err:?}");
    assert!(err.to_string().contains("user_agent"), "{err}");
}

// ---------------------------------------------------------------------------
// Plain fetches
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_200_html() {
    let server = start().await;
    let fetcher = loopback_fetcher(|_| {});
    let url = server.url("/html");
    let resp = fetch_plain(&fetcher, &url).await.unwrap();

    assert_eq!(resp.status, 200);
    assert_eq!(resp.url, url);
    assert!(!resp.not_modified);
    assert_eq!(
        resp.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.charset, "UTF-8");
    assert_eq!(
        resp.text,
        "<html><head><title>Acme Métaux</title></head><body>ok</body></html>"
    );
    assert_eq!(resp.body, resp.text.as_bytes());

    let headers = server.headers_for("/html");
    assert_eq!(
        headers.get("user-agent").unwrap(),
        "pivotwatch/0.1 (+https://github.com/pivotwatch)"
    );
    assert!(headers.get("if-none-match").is_none());
    assert!(headers.get("referer").is_none());
}

#[tokio::test]
async fn gzip_body_is_decompressed() {
    let server = start().await;
    let fetcher = loopback_fetcher(|_| {});
    let resp = fetch_plain(&fetcher, &server.url("/gzip-small"))
        .await
        .unwrap();
    assert_eq!(resp.text, "<p>Société Générale</p>");
    let accept_encoding = server.headers_for("/gzip-small");
    let accept_encoding = accept_encoding
        .get("accept-encoding")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(accept_encoding.contains("gzip"), "{accept_encoding}");
}

// ---------------------------------------------------------------------------
// Body cap
// ---------------------------------------------------------------------------

#[tokio::test]
async fn content_length_over_cap_rejected() {
    let server = start().await;
    assert!(
        raw_head(server.addr, "/big")
            .await
            .contains("content-length: 4096")
    );

    let fetcher = loopback_fetcher(|o| o.max_body = 1024);
    let err = fetch_plain(&fetcher, &server.url("/big"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { cap: 1024 }), "{err:?}");
    assert!(
        err.to_string().contains("1.0 KiB cap (max_body in [http])"),
        "{err}"
    );

    // Exactly at the cap is fine.
    let fetcher = loopback_fetcher(|o| o.max_body = 4096);
    assert_eq!(
        fetch_plain(&fetcher, &server.url("/big"))
            .await
            .unwrap()
            .body
            .len(),
        4096
    );
}

#[tokio::test]
async fn chunked_body_over_cap_rejected_mid_stream() {
    let server = start().await;
    let head = raw_head(server.addr, "/chunked").await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");

    let fetcher = loopback_fetcher(|o| o.max_body = 64 * 1024);
    let err = fetch_plain(&fetcher, &server.url("/chunked"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { cap: 65536 }),
        "{err:?}"
    );

    let fetcher = loopback_fetcher(|o| o.max_body = 4 * 1024 * 1024);
    let resp = fetch_plain(&fetcher, &server.url("/chunked"))
        .await
        .unwrap();
    assert_eq!(resp.body.len(), 4 * 1024 * 1024);
}

#[tokio::test]
async fn gzip_bomb_rejected_on_decompressed_size() {
    let server = start().await;
    let cap = 1024 * 1024;
    let on_wire = gzip(&vec![0u8; GZIP_BOMB_INFLATED]).len();
    assert!(
        on_wire < cap as usize / 10,
        "fixture is not a bomb: {on_wire} bytes"
    );

    let fetcher = loopback_fetcher(|o| o.max_body = cap);
    let err = fetch_plain(&fetcher, &server.url("/gzip-bomb"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { cap: c } if c == cap),
        "{err:?}"
    );
}

#[test]
fn too_large_message_names_the_cap() {
    let err = FetchError::TooLarge {
        cap: 8 * 1024 * 1024,
    };
    assert_eq!(
        err.to_string(),
        "response body exceeds the 8.0 MiB cap (max_body in [http]); raise it or select a smaller page"
    );
}

// ---------------------------------------------------------------------------
// Timeouts and connection failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn timeout_on_slow_handler() {
    let server = start().await;
    let fetcher = loopback_fetcher(|o| o.timeout = Duration::from_millis(300));
    let started = Instant::now();
    let err = fetch_plain(&fetcher, &server.url("/slow"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert!(
        matches!(&err, FetchError::Timeout { host, limit, connecting: false }
            if host == "127.0.0.1" && *limit == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("within 300ms"), "{err}");
}

#[tokio::test]
async fn refused_connection_is_connect_error() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let fetcher = loopback_fetcher(|_| {});
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let err = fetch_plain(&fetcher, &url).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Connect { host, .. } if host == "127.0.0.1"),
        "{err:?}"
    );
    assert!(err.is_transient());
}

// ---------------------------------------------------------------------------
// Redirects and schemes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn redirect_chain_within_limit_is_followed() {
    let server = start().await;
    let fetcher = loopback_fetcher(|o| o.max_redirects = 3);
    let resp = fetch_plain(&fetcher, &server.url("/r/3")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.url, server.url("/r/0"));
    assert_eq!(resp.text, "end of chain");
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn redirect_chain_over_limit_rejected() {
    let server = start().await;
    let fetcher = loopback_fetcher(|o| o.max_redirects = 3);
    let err = fetch_plain(&fetcher, &server.url("/r/4"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 3 }),
        "{err:?}"
    );
    // The initial request plus three followed redirects; the fourth is refused.
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn redirect_to_non_http_scheme_refused() {
    let server = start().await;
    let fetcher = loopback_fetcher(|_| {});
    for (path, scheme) in [("/to-file", "file"), ("/to-ftp", "ftp")] {
        let err = fetch_plain(&fetcher, &server.url(path)).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::UnsupportedScheme { scheme: s } if s == scheme),
            "{path}: {err:?}"
        );
    }
}

#[tokio::test]
async fn initial_non_http_scheme_refused_without_request() {
    let fetcher = loopback_fetcher(|_| {});
    for (url, scheme) in [
        ("file:///etc/passwd", "file"),
        ("ftp://127.0.0.1/", "ftp"),
        ("gopher://127.0.0.1:70/", "gopher"),
    ] {
        let err = fetch_plain(&fetcher, &Url::parse(url).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::UnsupportedScheme { scheme: s } if s == scheme),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn url_with_credentials_refused() {
    let url = Url::parse("http://user:secret@example.org/page?token=abc").unwrap();
    let err = check_url(&url, true).unwrap_err();
    assert!(
        matches!(&err, FetchError::InvalidUrl { url, .. } if url == "http://example.org/page"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("secret"));
}

// ---------------------------------------------------------------------------
// Private-address guard
// ---------------------------------------------------------------------------

#[tokio::test]
async fn private_addresses_refused_without_any_request() {
    let server = start().await;
    let port = server.addr.port();
    let guarded = Fetcher::new(FetchOptions::default()).unwrap();

    let cases = [
        (format!("http://127.0.0.1:{port}/html"), "127.0.0.1"),
        (format!("http://localhost:{port}/html"), "localhost"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/html"),
            "[::ffff:7f00:1]",
        ),
        (format!("http://2130706433:{port}/html"), "127.0.0.1"),
    ];
    for (url, want_host) in &cases {
        let err = fetch_plain(&guarded, &Url::parse(url).unwrap())
            .await
            .unwrap_err();
        let FetchError::PrivateAddress { host, addr } = &err else {
            panic!("{url}: expected PrivateAddress, got {err:?}");
        };
        assert_eq!(host, want_host, "{url}");
        assert!(
            addr.is_loopback() || addr.to_string() == "::ffff:127.0.0.1",
            "{url}: {addr}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(want_host) && msg.contains(&addr.to_string()),
            "{msg}"
        );
        assert!(msg.contains("allow_private_addresses = true"), "{msg}");
        assert!(!err.is_transient());
    }
    assert_eq!(server.hits(), 0, "the guard let a request through");

    // Control: the same URLs do reach the server when allowed, so hits() works.
    let open = loopback_fetcher(|_| {});
    let resp = fetch_plain(&open, &Url::parse(&cases[1].0).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(server.hits(), 1);
}

#[test]
fn is_public_ip_ipv4_ranges() {
    let refused = [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this network 0/8"),
        ("10.0.0.1", "private 10/8"),
        ("10.255.255.255", "private 10/8 top"),
        ("100.64.0.1", "CGNAT 100.64/10"),
        ("100.127.255.254", "CGNAT top"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.1", "loopback 127/8"),
        ("169.254.169.254", "link-local / cloud metadata"),
        ("172.16.0.1", "private 172.16/12"),
        ("172.31.255.255", "private 172.16/12 top"),
        ("192.0.0.8", "IETF 192.0.0/24"),
        ("192.0.2.1", "TEST-NET-1"),
        ("192.88.99.1", "6to4 relay"),
        ("192.168.1.1", "private 192.168/16"),
        ("198.18.0.1", "benchmarking 198.18/15"),
        ("198.19.255.1", "benchmarking top"),
        ("198.51.100.7", "TEST-NET-2"),
        ("203.0.113.9", "TEST-NET-3"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast SSDP"),
        ("240.0.0.1", "reserved 240/4"),
        ("255.255.255.255", "broadcast"),
    ];
    for (ip, what) in refused {
        assert!(
            !is_public_ip(ip.parse().unwrap()),
            "{ip} ({what}) must be refused"
        );
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255", // just below CGNAT
        "100.128.0.1",    // just above CGNAT
        "172.15.255.255", // just below 172.16/12
        "172.32.0.1",     // just above
        "192.169.0.1",
        "198.20.0.1",
        "223.255.255.254", // just below multicast
        "41.248.0.1",      // Maroc Telecom
    ];
    for ip in public {
        assert!(is_public_ip(ip.parse().unwrap()), "{ip} must be public");
    }
}

#[test]
fn is_public_ip_ipv6_ranges() {
    let refused = [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "ULA fc00::/7"),
        ("fd12:3456:789a::1", "ULA fd"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local top"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation 3fff::/20"),
        ("2001::1", "Teredo"),
        ("100::1", "discard"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.1.2.3", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
        ("::ffff:100.64.0.1", "IPv4-mapped CGNAT"),
        ("::127.0.0.1", "IPv4-compatible loopback"),
        ("::192.168.0.1", "IPv4-compatible private"),
        ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
        ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
        ("2002:c0a8:101::1", "6to4 of 192.168.1.1"),
    ];
    for (ip, what) in refused {
        assert!(
            !is_public_ip(ip.parse().unwrap()),
            "{ip} ({what}) must be refused"
        );
    }
    let public = [
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2606:4700:4700::1111",
        "2a00:1450:4007:80e::200e",
        "2001:4860:4860::8888",
    ];
    for ip in public {
        assert!(
            is_public_ip(ip.parse::<IpAddr>().unwrap()),
            "{ip} must be public"
        );
    }
}

// ---------------------------------------------------------------------------
// Charsets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn charset_windows_1252_from_header() {
    let server = start().await;
    let resp = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/cp1252"))
        .await
        .unwrap();
    assert_eq!(resp.charset, "windows-1252");
    assert_eq!(resp.text, "<p>Société Métaux</p>");
}

#[tokio::test]
async fn charset_windows_1256_arabic_from_header() {
    let server = start().await;
    let resp = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/cp1256"))
        .await
        .unwrap();
    assert_eq!(resp.charset, "windows-1256");
    assert_eq!(resp.text, "<p>سلام</p>");
}

#[tokio::test]
async fn charset_windows_1251_russian_from_meta_charset() {
    let server = start().await;
    let resp = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/cp1251-meta"))
        .await
        .unwrap();
    assert_eq!(resp.content_type.as_deref(), Some("text/html"));
    assert_eq!(resp.charset, "windows-1251");
    assert!(
        resp.text.contains("<title>Микроконтроллер</title>"),
        "{}",
        resp.text
    );
    // The raw bytes are the windows-1251 ones, not UTF-8.
    assert!(resp.body.windows(3).any(|w| w == b"\xcc\xe8\xea"));
}

#[tokio::test]
async fn charset_iso_8859_1_from_http_equiv_meta() {
    let server = start().await;
    let resp = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/latin1-equiv"))
        .await
        .unwrap();
    // WHATWG: the iso-8859-1 label means windows-1252.
    assert_eq!(resp.charset, "windows-1252");
    assert!(
        resp.text.contains("<BODY>Société Générale ©</BODY>"),
        "{}",
        resp.text
    );
}

#[tokio::test]
async fn charset_utf8_bom() {
    let server = start().await;
    let resp = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/bom"))
        .await
        .unwrap();
    assert_eq!(resp.charset, "UTF-8");
    assert_eq!(resp.text, "Zürich"); // BOM stripped
}

#[test]
fn decode_body_without_any_declaration_is_utf8_lossy() {
    let (text, enc) = decode_body(b"caf\xc3\xa9 \xff", Some("text/html"));
    assert_eq!(enc.name(), "UTF-8");
    assert_eq!(text, "café \u{fffd}");
}

#[test]
fn decode_body_utf16_bom() {
    let (text, enc) = decode_body(b"\xff\xfeh\x00i\x00", None);
    assert_eq!(enc.name(), "UTF-16LE");
    assert_eq!(text, "hi");
}

// ---------------------------------------------------------------------------
// Conditional GET
// ---------------------------------------------------------------------------

#[tokio::test]
async fn conditional_get_304_with_if_none_match() {
    let server = start().await;
    let fetcher = loopback_fetcher(|_| {});
    let url = server.url("/etag");

    let first = fetch_plain(&fetcher, &url).await.unwrap();
    assert_eq!(first.status, 200);
    assert!(!first.not_modified);
    assert_eq!(first.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        first.last_modified.as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );

    let cond = Conditional {
        etag: first.etag.clone(),
        last_modified: first.last_modified.clone(),
    };
    let second = fetcher.fetch(&url, &cond).await.unwrap();
    assert_eq!(second.status, 304);
    assert!(second.not_modified);
    assert!(second.body.is_empty());
    assert!(second.text.is_empty());
    assert_eq!(second.etag.as_deref(), Some("\"v1\""));

    let headers = server.headers_for("/etag");
    assert_eq!(headers.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(
        headers.get("if-modified-since").unwrap(),
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );
}

// ---------------------------------------------------------------------------
// Status errors, block pages, Retry-After
// ---------------------------------------------------------------------------

#[tokio::test]
async fn status_403_challenge_page_is_blocked() {
    let server = start().await;
    let err = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/challenge"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 403,
                retry_after: None,
                blocked: true
            }
        ),
        "{err:?}"
    );
    assert!(err.is_blocked());
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("block page or bot challenge"),
        "{err}"
    );
}

#[tokio::test]
async fn status_403_plain_is_not_blocked() {
    let server = start().await;
    let err = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/forbidden"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 403,
                blocked: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_blocked());
}

#[tokio::test]
async fn status_503_retry_after_seconds_parsed() {
    let server = start().await;
    let err = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/maintenance"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 503,
                retry_after: Some(d),
                blocked: false
            } if d == Duration::from_secs(120)
        ),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.is_transient());
    assert!(err.to_string().contains("Retry-After 2m"), "{err}");
}

#[tokio::test]
async fn status_404_is_http_status_not_transient() {
    let server = start().await;
    let err = fetch_plain(&loopback_fetcher(|_| {}), &server.url("/no-such-page"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 404,
                retry_after: None,
                blocked: false
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[test]
fn retry_after_forms() {
    // 2015-10-21T07:28:00Z
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed Oct 21 07:28:30 2015", now),
        Some(Duration::from_secs(30))
    );
    // In the past: retry now.
    assert_eq!(
        parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[test]
fn looks_blocked_markers() {
    assert!(looks_blocked(CHALLENGE_PAGE));
    assert!(looks_blocked(
        "<html><title>Access Denied</title>Reference #18.2f</html>"
    ));
    assert!(looks_blocked(
        "Our systems have detected UNUSUAL TRAFFIC from your computer network."
    ));
    assert!(looks_blocked("<h1>Are you a robot?</h1>"));
    assert!(!looks_blocked(
        "<html><title>Acme Métaux SARL</title><p>Ferraille, cuivre</p></html>"
    ));

    // A long catalogue page with a reCAPTCHA contact form is not a block page…
    let catalogue = format!(
        "<html>{}<form><div class=\"g-recaptcha\"></div> captcha</form></html>",
        "<li>Siemens 6ES7 PLC</li>".repeat(2000)
    );
    assert!(!looks_blocked(&catalogue));
    // …but a Cloudflare challenge script is, whatever the page size.
    let challenge = format!(
        "{catalogue}<script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/jsch/v1\"></script>"
    );
    assert!(looks_blocked(&challenge));
}
