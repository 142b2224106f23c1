//! `pivotwatch run` as a real process against loopback web servers:
//! sources get checked, read commands answer through the control socket,
//! a second `run`/`once` fails at once, SIGHUP with a broken watchlist
//! keeps the running configuration, SIGTERM exits 0 with nothing lost,
//! politeness (per-host spacing, robots.txt, 304, Retry-After) as the
//! server sees it, the status endpoint's formats, source-health notices
//! and the systemd notify protocol.
//!
//! Every wait is bounded polling with a timeout; nothing sleeps to
//! synchronise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::process::{BIN, Daemon, WAIT, at, stderr, stdout};
use crate::support::{CATALOGUE_WATCHLIST, catalogue_page};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use nix::sys::signal::Signal;
use pivotwatch::app::demo::{Page, Site};
use pivotwatch::record::CheckStatus;
use pivotwatch::store::Store;

const SCRAP: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("Steel scrap E3", "", "FE-E3", "240"),
];
const PIVOT: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"),
    ("FPGA", "AMD Xilinx", "XC7A35T-1CPG236C", "95"),
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn settings(status_port: u16, extra_http: &str, extra: &str) -> String {
    format!(
        r#"[store]
path = "state"
[http]
allow_private_addresses = true
timeout = "10s"
per_host_interval = "100ms"
{extra_http}
[email]
from = "pivotwatch <alerts@pivotwatch.test>"
spool_dir = "spool"
[[subscriber]]
name = "desk"
to = ["desk@watchdog.test"]
min_severity = "info"
[status]
listen = "127.0.0.1:{status_port}"
[daemon]
jitter = "0s"
grace_period = "20s"
{extra}
"#
    )
}

/// A temp folder with settings and watchlists.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(settings: &str, watchlist: &str) -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
        std::fs::write(dir.path().join("pivotwatch.toml"), settings).unwrap();
        std::fs::write(dir.path().join("watchlists/test.toml"), watchlist).unwrap();
        Dir { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn watchlist(&self) -> PathBuf {
        self.path().join("watchlists/test.toml")
    }
    fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.path().join("pivotwatch.toml").display().to_string(),
            "--watchlists".into(),
            self.path().join("watchlists").display().to_string(),
        ]
    }
    /// Runs a CLI command to completion.
    fn cli(&self, args: &[&str]) -> (Output, Duration) {
        let t = Instant::now();
        let out = Command::new(BIN)
            .args(self.args())
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .expect("run pivotwatch");
        (out, t.elapsed())
    }
    fn store(&self) -> Store {
        Store::open(&self.path().join("state")).expect("store")
    }
    fn files_containing(&self, needle: &str) -> usize {
        std::fs::read_dir(self.path().join("spool"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .contains(needle)
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Daemon {
    fn start(dir: &Dir, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = dir.path().join(format!("daemon-{}.log", fastrand::u32(..)));
        let mut cmd = Command::new(BIN);
        cmd.args(dir.args()).args(extra).arg("run");
        Daemon::spawn(cmd, log, env)
    }
    /// Waits until the daemon holds the store and answers on its control
    /// socket (before that, a CLI read command would open the store itself
    /// and make the starting daemon fail with "in use").
    async fn ready(&mut self, dir: &Dir) {
        let sock = dir.path().join("state/control.sock");
        let t = Instant::now();
        while !sock.exists() {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("daemon exited ({s}) before it was ready:\n{}", self.log());
            }
            assert!(t.elapsed() < WAIT, "daemon not ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn run_check_now(dir: &Dir) -> Daemon {
    let log = dir.path().join(format!("daemon-{}.log", fastrand::u32(..)));
    let mut cmd = Command::new(BIN);
    cmd.args(dir.args()).args(["run", "--check-now"]);
    Daemon::spawn(cmd, log, &[])
}

/// Polls `f` until it returns `Some`, failing after `within`.
async fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let r = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((status, ct, r.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_checks_answers_read_commands_serves_status_and_stops_cleanly() {
    let site = Site::start().await.unwrap();
    site.set("/shop", Page::html(catalogue_page(PIVOT, "09:00", None)));
    let port = free_port();
    let dir = Dir::new(
        &settings(port, "", ""),
        &CATALOGUE_WATCHLIST.replace("{BASE}", &site.base()),
    );
    let mut daemon = Daemon::start(&dir, &["--log-json"], &[]);
    daemon.ready(&dir).await;

    // The never-checked source is checked soon after start, and the
    // finding (a scrap dealer listing a TI DSP) answers through the daemon.
    let findings = until("a finding via the control socket", WAIT, || {
        let (o, _) = dir.cli(&["findings", "--json"]);
        let s = stdout(&o);
        (o.status.success() && s.contains("profile_mismatch")).then_some(s)
    })
    .await;
    let f: serde_json::Value =
        serde_json::from_str(findings.lines().next().unwrap()).expect("finding JSON");
    assert_eq!(f["entity"], "acme");
    assert_eq!(f["source"], "shop");
    let (o, _) = dir.cli(&["history", "acme/shop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(new)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("snapshot"), "{}", stdout(&o));
    let (o, _) = dir.cli(&["explain", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("TMS320F28335PGFA"), "{}", stdout(&o));
    // Errors keep their exit code through the socket.
    let (o, _) = dir.cli(&["history", "nobody"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no entity"), "{}", stderr(&o));

    // A second daemon, or `once`, on the same store fails at once.
    for cmd in [&["run"][..], &["once"][..]] {
        let (o, took) = dir.cli(cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("in use by another pivotwatch process"),
            "{cmd:?}: {}",
            stderr(&o)
        );
        assert!(took < Duration::from_secs(5), "{cmd:?} took {took:?}");
    }

    // The alert is delivered by the daemon's delivery loop.
    until("the alert in the spool folder", WAIT, || {
        (dir.files_containing("X-Pivotwatch-Finding") > 0).then_some(())
    })
    .await;

    // /healthz, /metrics (Prometheus text), /feed.atom (Atom), /.
    let (code, _, body) = http_get(port, "/healthz").await.expect("healthz");
    assert_eq!(code, 200, "{body}");
    let (code, ct, metrics) = http_get(port, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    let lines = metrics.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert!(
        value("pivotwatch_checks_total", Some(("outcome", "new"))) >= 1.0,
        "{metrics}"
    );
    assert!(value("pivotwatch_findings_total", None) >= 1.0, "{metrics}");
    assert!(
        value("pivotwatch_deliveries_total", Some(("outcome", "sent"))) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        value("pivotwatch_sources", Some(("health", "ok"))),
        1.0,
        "{metrics}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "pivotwatch_fetch_duration_seconds"
                && matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "{metrics}"
    );
    for name in [
        "pivotwatch_outbox_depth",
        "pivotwatch_changes_total",
        "pivotwatch_check_duration_seconds",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} missing:\n{metrics}"
        );
    }
    let (code, ct, feed) = http_get(port, "/feed.atom").await.expect("feed");
    assert_eq!(code, 200);
    assert!(ct.starts_with("application/atom+xml"), "{ct}");
    let feed = atom_syndication::Feed::from_str(&feed).expect("Atom XML");
    assert!(!feed.entries().is_empty());
    assert!(
        feed.entries()[0]
            .title()
            .as_str()
            .contains("Acme Recycling"),
        "{:?}",
        feed.entries()[0].title()
    );
    let (code, _, page) = http_get(port, "/").await.expect("page");
    assert_eq!(code, 200);
    assert!(
        page.contains("acme/shop") && page.contains("TMS320F28335PGFA"),
        "{page}"
    );

    // SIGTERM: exit 0, nothing lost, the socket removed.
    let status = daemon.stop().await;
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(!dir.path().join("state/control.sock").exists());
    let log = daemon.log();
    // JSON logs (--log-json): one object per line, the check span with
    // entity, source and host.
    let mut check_span = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["span"]["name"] == "check" {
            assert_eq!(v["span"]["entity"], "acme");
            assert_eq!(v["span"]["source"], "shop");
            assert_eq!(v["span"]["host"], "127.0.0.1");
            check_span = true;
        }
    }
    assert!(check_span, "{log}");
    let store = dir.store();
    let findings = store.findings().unwrap();
    assert!(!findings.is_empty());
    let sent = store.sent_deliveries().unwrap();
    let pending = store.outbox_all().unwrap();
    for f in &findings {
        assert!(
            sent.iter().chain(&pending).any(|d| d.finding == f.id),
            "finding {} has no delivery",
            f.id
        );
    }
    // The next due time is stored for the restart.
    let next = store
        .daemon_source("acme/shop")
        .unwrap()
        .and_then(|d| d.next_due)
        .expect("next due stored");
    assert!(next > chrono::Utc::now(), "{next}");
}

// ---------------------------------------------------------------------------
// A recording web server: scripted replies per path, and a log of what it
// saw (path, arrival time, If-None-Match).

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn html(body: String) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "text/html; charset=utf-8".into())],
            body,
            delay: Duration::ZERO,
        }
    }
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "text/plain".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Clone, Debug)]
struct Hit {
    path: String,
    at: Instant,
    if_none_match: Option<String>,
    answered: u16,
}

#[derive(Default)]
struct Rec {
    /// Replies per path; the last one repeats.
    routes: Mutex<HashMap<String, Vec<Reply>>>,
    hits: Mutex<Vec<Hit>>,
}

#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    rec: Arc<Rec>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let rec = Arc::new(Rec::default());
        let app = axum::Router::new().fallback(answer).with_state(rec.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, rec }
    }
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn route(&self, path: &str, replies: Vec<Reply>) {
        self.rec.routes.lock().unwrap().insert(path.into(), replies);
    }
    fn hits(&self) -> Vec<Hit> {
        self.rec.hits.lock().unwrap().clone()
    }
    fn hits_of(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }
}

async fn answer(State(rec): State<Arc<Rec>>, req: Request<Body>) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let at = Instant::now();
    let reply = {
        let mut routes = rec.routes.lock().unwrap();
        match routes.get_mut(&path) {
            Some(v) if v.len() > 1 => Some(v.remove(0)),
            Some(v) => v.first().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::text(404, "not found"));
    let etag = reply
        .headers
        .iter()
        .find(|(k, _)| *k == "etag")
        .map(|(_, v)| v.clone());
    let not_modified = reply.status == 200 && etag.is_some() && inm == etag;
    rec.hits.lock().unwrap().push(Hit {
        path,
        at,
        if_none_match: inm,
        answered: if not_modified { 304 } else { reply.status },
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut r = if not_modified {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(reply.body))
    };
    *r.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::from_u16(reply.status).unwrap()
    };
    for (k, v) in &reply.headers {
        if not_modified && *k != "etag" {
            continue;
        }
        r.headers_mut()
            .insert(*k, HeaderValue::from_str(v).unwrap());
    }
    r
}

const POLITE_WATCHLIST: &str = include_str!("../fixtures/polite.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn politeness_as_the_server_sees_it_spacing_robots_304_retry_after() {
    let server = Recorder::start().await;
    let page = catalogue_page(SCRAP, "x", None);
    let mut with_etag = Reply::html(page.clone());
    with_etag.headers.push(("etag", "\"v1\"".into()));
    server.route(
        "/robots.txt",
        vec![Reply::text(200, "User-agent: *\nDisallow: /private\n")],
    );
    server.route("/a", vec![with_etag.clone()]);
    server.route("/b", vec![Reply::html(page.clone())]);
    server.route("/private/c", vec![Reply::html(page.clone())]);
    let mut busy = Reply::text(429, "slow down");
    busy.headers.push(("retry-after", "2".into()));
    server.route("/busy", vec![busy, Reply::html(page.clone())]);

    let interval = Duration::from_millis(600);
    let dir = Dir::new(
        &settings(free_port(), "per_host_concurrency = 2", "").replace(
            "per_host_interval = \"100ms\"",
            "per_host_interval = \"600ms\"",
        ),
        &POLITE_WATCHLIST.replace("{BASE}", &server.base()),
    );
    let mut daemon = Daemon::start(&dir, &[], &[]);
    daemon.ready(&dir).await;
    until("the Retry-After retry of /busy", WAIT, || {
        (server.hits_of("/busy").len() >= 2).then_some(())
    })
    .await;
    until("/a and /b", WAIT, || {
        (!server.hits_of("/a").is_empty() && !server.hits_of("/b").is_empty()).then_some(())
    })
    .await;
    // The server asked for 2 s; the retry came no sooner (and not much later).
    let busy = server.hits_of("/busy");
    let gap = busy[1].at - busy[0].at;
    assert_eq!(busy[0].answered, 429);
    assert!(gap >= Duration::from_millis(1950), "retry after {gap:?}");
    assert!(gap < Duration::from_secs(10), "retry after {gap:?}");
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());

    let hits = server.hits();
    // robots.txt fetched once (cached), and the disallowed page never.
    assert_eq!(server.hits_of("/robots.txt").len(), 1, "{hits:?}");
    assert!(server.hits_of("/private/c").is_empty(), "{hits:?}");
    // Per-host spacing: every request starts at least the interval after
    // the previous one (the server sees arrivals, which connection set-up
    // can shift: 100 ms of slack).
    for w in hits.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap + Duration::from_millis(100) >= interval,
            "{} then {} only {gap:?} apart",
            w[0].path,
            w[1].path
        );
    }
    {
        let store = dir.store();
        let private = store.source_state("acme/private").unwrap().expect("state");
        assert_eq!(private.last_status, Some(CheckStatus::Blocked));
        let err = private.last_error.unwrap_or_default();
        assert!(err.contains("robots.txt disallows /private/c"), "{err}");
        let busy = store.source_state("acme/busy").unwrap().expect("state");
        assert_eq!(busy.last_status, Some(CheckStatus::New));
    }

    // A restart with --check-now: /a answers 304 to the stored ETag, which
    // is an unchanged check.
    let mut daemon = run_check_now(&dir);
    daemon.ready(&dir).await;
    until("the conditional GET of /a", WAIT, || {
        (server.hits_of("/a").len() >= 2).then_some(())
    })
    .await;
    until("/b checked again", WAIT, || {
        (server.hits_of("/b").len() >= 2).then_some(())
    })
    .await;
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
    let a = server.hits_of("/a");
    assert_eq!(a[1].if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(a[1].answered, 304);
    let store = dir.store();
    let st = store.source_state("acme/a").unwrap().expect("state");
    assert_eq!(st.last_status, Some(CheckStatus::Unchanged));
    assert_eq!(store.history("acme/a").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_watchlist_keeps_the_running_configuration() {
    let site = Site::start().await.unwrap();
    site.set("/shop", Page::html(catalogue_page(SCRAP, "09:00", None)));
    site.set(
        "/reg",
        Page::html("<html><body><h1 class=\"name\">Acme Recycling SARL</h1></body></html>"),
    );
    let watchlist = CATALOGUE_WATCHLIST.replace("{BASE}", &site.base());
    let dir = Dir::new(&settings(free_port(), "", ""), &watchlist);
    let mut daemon = Daemon::start(&dir, &[], &[]);
    daemon.ready(&dir).await;
    until("the first check", WAIT, || {
        let (o, _) = dir.cli(&["history", "acme/shop"]);
        stdout(&o).contains("(new)").then_some(())
    })
    .await;

    // A broken edit: a selector that does not compile.
    let broken = watchlist.replace("row = \"#products tr\"", "row = \"#products tr[\"");
    std::fs::write(dir.watchlist(), &broken).unwrap();
    let loc = at(dir.watchlist(), &broken, "\"#products tr[\"");
    daemon.signal(Signal::SIGHUP);
    until("the reload error with its location", WAIT, || {
        daemon.log().contains(&format!("{loc}: ")).then_some(())
    })
    .await;
    assert!(daemon.running(), "{}", daemon.log());
    assert!(daemon.log().contains("still running on the previous one"));
    // Still answering, on the old configuration.
    let (o, _) = dir.cli(&["history", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("acme/shop"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("configuration on disk has 1 error"),
        "{}",
        stderr(&o)
    );

    // A good edit adds a source: it is checked soon after the reload.
    let fixed = format!(
        "{watchlist}\n[[entity.source]]\nid = \"reg\"\nkind = \"registry\"\nurl = \"{}/reg\"\n[entity.source.fields]\nname = \"h1.name\"\n",
        site.base()
    );
    std::fs::write(dir.watchlist(), fixed).unwrap();
    daemon.signal(Signal::SIGHUP);
    until("the new source checked", WAIT, || {
        let (o, _) = dir.cli(&["history", "acme/reg"]);
        stdout(&o).contains("(new)").then_some(())
    })
    .await;
    assert!(daemon.log().contains("Configuration reloaded."));
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_check_in_flight_finish_and_exits_0() {
    let server = Recorder::start().await;
    let mut slow = Reply::html(catalogue_page(PIVOT, "x", None));
    slow.delay = Duration::from_millis(1500);
    server.route("/shop", vec![slow]);
    let dir = Dir::new(
        &settings(free_port(), "robots_txt = false", ""),
        &CATALOGUE_WATCHLIST.replace("{BASE}", &server.base()),
    );
    let mut daemon = Daemon::start(&dir, &[], &[]);
    daemon.ready(&dir).await;
    until("the slow request", WAIT, || {
        (!server.hits_of("/shop").is_empty()).then_some(())
    })
    .await;
    let t = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "exited before the check finished: {:?}",
        t.elapsed()
    );
    // Nothing lost: the snapshot, the finding and its queued delivery.
    let store = dir.store();
    assert_eq!(store.history("acme/shop").unwrap().len(), 1);
    let findings = store.findings().unwrap();
    assert!(!findings.is_empty());
    let sent = store.sent_deliveries().unwrap();
    let pending = store.outbox_all().unwrap();
    for f in &findings {
        assert!(sent.iter().chain(&pending).any(|d| d.finding == f.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_downtime_checks_once() {
    let server = Recorder::start().await;
    server.route("/shop", vec![Reply::html(catalogue_page(SCRAP, "x", None))]);
    let dir = Dir::new(
        &settings(free_port(), "robots_txt = false", ""),
        &CATALOGUE_WATCHLIST
            .replace("{BASE}", &server.base())
            .replace(
                "name = \"test\"",
                "name = \"test\"\nschedule = \"0 * * * *\"",
            ),
    );
    // The store says: checked before, due six hours ago (the daemon was down).
    {
        let store = dir.store();
        store
            .put_source_state(
                "acme/shop",
                &pivotwatch::store::SourceState {
                    last_check: Some(chrono::Utc::now() - chrono::Duration::hours(7)),
                    last_status: Some(CheckStatus::Unchanged),
                    ..Default::default()
                },
            )
            .unwrap();
        store
            .put_daemon_source(
                "acme/shop",
                &pivotwatch::store::DaemonSource {
                    next_due: Some(chrono::Utc::now() - chrono::Duration::hours(6)),
                    schedule: "0 * * * * UTC".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        store.flush().unwrap();
    }
    let mut daemon = Daemon::start(&dir, &[], &[]);
    daemon.ready(&dir).await;
    until("the catch-up check", WAIT, || {
        (!server.hits_of("/shop").is_empty()).then_some(())
    })
    .await;
    // Give a replay of missed slots every chance to show up: wait until
    // the next due time has been stored, then a little more.
    until("the next due time", WAIT, || {
        let (o, _) = dir.cli(&["history", "acme/shop"]);
        stdout(&o).contains("(new)").then_some(())
    })
    .await;
    tokio::time::timeout(Duration::from_millis(1500), std::future::pending::<()>())
        .await
        .ok();
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
    assert_eq!(
        server.hits_of("/shop").len(),
        1,
        "one catch-up check, not six"
    );
    let next = dir
        .store()
        .daemon_source("acme/shop")
        .unwrap()
        .and_then(|d| d.next_due)
        .unwrap();
    let now = chrono::Utc::now();
    assert!(
        next > now && next <= now + chrono::Duration::hours(1),
        "{next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_recovered_notices_go_to_the_maintainers_once() {
    let server = Recorder::start().await;
    server.route("/shop", vec![Reply::text(404, "gone")]);
    let dir = Dir::new(
        &settings(free_port(), "robots_txt = false", "failure_threshold = 1"),
        &CATALOGUE_WATCHLIST.replace("{BASE}", &server.base()),
    );
    let mut daemon = Daemon::start(&dir, &[], &[]);
    daemon.ready(&dir).await;
    until("the source-broken notice", WAIT, || {
        (dir.files_containing("source broken: Acme Recycling / shop") == 1).then_some(())
    })
    .await;
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
    assert_eq!(dir.files_containing("analyst@example.org"), 1);
    let d = dir.store().daemon_source("acme/shop").unwrap().unwrap();
    assert!(d.broken_notice.is_some());

    // Still broken after a restart: no second notice.
    let mut daemon = run_check_now(&dir);
    daemon.ready(&dir).await;
    until("the second failed check", WAIT, || {
        (server.hits_of("/shop").len() >= 2).then_some(())
    })
    .await;
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
    assert_eq!(dir.files_containing("source broken"), 1);

    // Fixed: one recovery notice.
    server.route("/shop", vec![Reply::html(catalogue_page(SCRAP, "x", None))]);
    let mut daemon = run_check_now(&dir);
    daemon.ready(&dir).await;
    until("the recovery notice", WAIT, || {
        (dir.files_containing("source recovered: Acme Recycling / shop") == 1).then_some(())
    })
    .await;
    assert_eq!(daemon.stop().await.code(), Some(0), "{}", daemon.log());
    let d = dir.store().daemon_source("acme/shop").unwrap().unwrap();
    assert!(d.broken_notice.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_ready_reloading_stopping_and_watchdog() {
    let site = Site::start().await.unwrap();
    site.set("/shop", Page::html(catalogue_page(SCRAP, "09:00", None)));
    let dir = Dir::new(
        &settings(free_port(), "", ""),
        &CATALOGUE_WATCHLIST.replace("{BASE}", &site.base()),
    );
    let sock_path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let mut daemon = Daemon::start(
        &dir,
        &[],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let recv_until = async |want: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 4096];
        loop {
            if seen.iter().any(|m| m.lines().any(|l| l == want)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {want} in {seen:?}");
            if let Ok(Ok(n)) = tokio::time::timeout(left, sock.recv(&mut buf)).await {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    recv_until("READY=1", &mut seen).await;
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=watching 1 source(s)")),
        "{seen:?}"
    );
    recv_until("WATCHDOG=1", &mut seen).await;
    seen.clear();
    daemon.signal(Signal::SIGHUP);
    recv_until("RELOADING=1", &mut seen).await;
    recv_until("READY=1", &mut seen).await;
    assert!(
        seen.iter().any(|m| m.contains("MONOTONIC_USEC=")),
        "{seen:?}"
    );
    daemon.signal(Signal::SIGTERM);
    recv_until("STOPPING=1", &mut seen).await;
    assert_eq!(daemon.exit(WAIT).await.code(), Some(0), "{}", daemon.log());
}

#[test]
fn systemd_unit_has_notify_reload_credentials_and_hardening() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/pivotwatch.service"
    ))
    .unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "StateDirectory=pivotwatch",
        "RestartPreventExitStatus=3",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LoadCredential=smtp_password:/etc/pivotwatch/smtp_password",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "UMask=077",
    ] {
        assert!(lines.contains(&want), "missing {want:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ExecStartPre=") && l.ends_with(" check"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with(" run"))
    );
    // systemd takes a `#` after a value as part of the value.
    for l in &lines {
        if !l.starts_with('#') && l.contains('=') {
            assert!(!l.contains(" #"), "inline comment: {l}");
        }
    }
}
