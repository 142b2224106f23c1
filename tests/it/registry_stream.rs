//! `pivotwatch run` following the Companies House streaming API on a
//! loopback streaming server: an event for a watched company checks it at
//! once; hundreds of others are dropped; a disconnect resumes from the
//! last timepoint; a 416 checks every Companies House source; a restart
//! resumes from the stored timepoint.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::process::{BIN, Daemon};
use crate::support::{Env, SETTINGS};

/// The stream key (Companies House issues it apart from the REST key).
const STREAM_KEY: &str = "stream-key-77ab19";
/// `Basic base64("stream-key-77ab19:")`.
const STREAM_BASIC: &str = "Basic c3RyZWFtLWtleS03N2FiMTk6";

/// What one connection to `/companies` gets.
enum Script {
    /// Wait for the gate, send these lines, end the response cleanly.
    Events(Arc<Notify>, Vec<String>),
    /// Send these lines, then stay open with heartbeats.
    EventsThenHold(Vec<String>),
    /// `416 Requested Range Not Satisfiable`.
    TooOld,
}

/// Path and query, and `Authorization`, of each connection.
type Connections = Vec<(String, Option<String>)>;

#[derive(Clone, Default)]
struct StreamServer {
    log: Arc<Mutex<Connections>>,
    scripts: Arc<Mutex<VecDeque<Script>>>,
}

impl StreamServer {
    async fn start(&self) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(sock).await });
            }
        });
        port
    }

    fn log(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().unwrap().clone()
    }

    fn companies(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with("/companies"))
            .collect()
    }

    async fn serve(&self, sock: tokio::net::TcpStream) {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut auth = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("authorization")
            {
                auth = Some(v.trim().to_string());
            }
        }
        self.log.lock().unwrap().push((path.clone(), auth));
        let script = if path.starts_with("/companies") {
            self.scripts.lock().unwrap().pop_front()
        } else {
            None
        };
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        match script {
            Some(Script::TooOld) => {
                let _ = w
                    .write_all(b"HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
            Some(Script::Events(gate, lines)) => {
                let _ = w.write_all(head.as_bytes()).await;
                let _ = w.write_all(chunk("\n").as_bytes()).await;
                gate.notified().await;
                // Several events per chunk, a line split across chunks.
                let all: String = lines.iter().map(|l| format!("{l}\n")).collect();
                for part in all.as_bytes().chunks(997) {
                    let part = String::from_utf8_lossy(part).into_owned();
                    let _ = w.write_all(chunk(&part).as_bytes()).await;
                }
                let _ = w.write_all(b"0\r\n\r\n").await;
            }
            Some(Script::EventsThenHold(lines)) => {
                let _ = w.write_all(head.as_bytes()).await;
                let all: String = lines.iter().map(|l| format!("{l}\n")).collect();
                let _ = w.write_all(chunk(&all).as_bytes()).await;
                hold(&mut w).await;
            }
            None => {
                let _ = w.write_all(head.as_bytes()).await;
                hold(&mut w).await;
            }
        }
    }
}

/// Heartbeats until the client goes away.
async fn hold(w: &mut tokio::net::tcp::OwnedWriteHalf) {
    loop {
        if w.write_all(b"1\r\n\n\r\n").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event(number: &str, timepoint: u64) -> String {
    json!({
        "resource_kind": "company-profile",
        "resource_uri": format!("/company/{number}"),
        "resource_id": number,
        "data": {"company_name": format!("COMPANY {number} LIMITED"), "company_status": "active",
                 "etag": "0123456789abcdef", "links": {"self": format!("/company/{number}")}},
        "event": {"timepoint": timepoint, "published_at": "2026-11-20T10:00:00Z", "type": "changed"}
    })
    .to_string()
}

async fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn metrics(port: u16) -> String {
    get(port, "/metrics").await
}

async fn get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_check_watched_companies_at_once_and_resume() {
    let env = Env::new().await;
    let server = StreamServer::default();
    let sport = server.start().await;
    let status = free_port();
    let settings = format!(
        "{SETTINGS}\n[status]\nlisten = \"127.0.0.1:{status}\"\n[daemon]\njitter = \"0s\"\n\
         [registries.companies_house]\nbase_url = \"{{BASE}}\"\napi_key_file = \"ch.key\"\n\
         stream = true\nstream_url = \"http://127.0.0.1:{sport}\"\nstream_api_key_file = \"stream.key\"\n"
    );
    env.write(&settings, super::registries::CH_WATCHLIST);
    std::fs::write(env.dir.path().join("ch.key"), super::registries::CH_KEY).unwrap();
    std::fs::write(env.dir.path().join("stream.key"), STREAM_KEY).unwrap();
    let mut ch = super::registries::Ch::load();
    ch.serve(&env.site);

    // 300 events for other companies, one for the watched one, the end.
    let gate = Arc::new(Notify::new());
    let mut first: Vec<String> = (1..=300).map(|i| event(&format!("09{i:06}"), i)).collect();
    first.push(event("01234567", 301));
    {
        let mut s = server.scripts.lock().unwrap();
        s.push_back(Script::Events(gate.clone(), first));
        s.push_back(Script::TooOld);
        s.push_back(Script::EventsThenHold(vec![event("08000001", 900)]));
    }

    let args = ["--config", "pivotwatch.toml", "--watchlists", "watchlists"];
    let start = |n: u32| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(env.dir.path())
            .args(args)
            .args(["run", "--check-now"]);
        Daemon::spawn(cmd, env.dir.path().join(format!("daemon-{n}.log")), &[])
    };
    let mut d = start(1);
    // The first check (four requests), and the stream connected.
    until("the first check", Duration::from_secs(30), || {
        (env.site.request_log().len() >= 4).then_some(())
    })
    .await;
    until("the stream connection", Duration::from_secs(30), || {
        (!server.companies().is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        server.companies()[0],
        "/companies",
        "no timepoint stored yet"
    );
    // Let the first check commit before the registry changes.
    until("the first snapshot", Duration::from_secs(30), || {
        d.log().contains("Check done.").then_some(())
    })
    .await;

    // A new director; then the stream tells.
    ch.officers["items"].as_array_mut().unwrap().push(json!({
        "name": "OKONKWO, Daniel", "officer_role": "director", "appointed_on": "2026-11-20"
    }));
    ch.officers["total_results"] = json!(3);
    ch.serve(&env.site);
    let told = Instant::now();
    gate.notify_one();
    let mail = until("the alert mail", Duration::from_secs(30), || {
        env.eml_files().into_iter().next()
    })
    .await;
    let within = told.elapsed();
    let text = std::fs::read(&mail).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&text).unwrap();
    let body = parsed.body_text(0).unwrap_or_default().into_owned();
    assert!(
        body.contains("officer appointed: OKONKWO, Daniel (director, appointed 2026-11-20)"),
        "{body}"
    );
    assert!(
        within < Duration::from_secs(20),
        "alert {within:?} after the event"
    );

    // The disconnect: resumed from the last timepoint (301), which answers
    // 416: every Companies House source is checked again, and the stream
    // followed from now (no timepoint).
    let conns = until("two reconnects", Duration::from_secs(30), || {
        let c = server.companies();
        (c.len() >= 3).then_some(c)
    })
    .await;
    assert_eq!(conns[1], "/companies?timepoint=301");
    assert_eq!(conns[2], "/companies");
    until("the full check after 416", Duration::from_secs(30), || {
        (env.site.request_log().len() >= 12).then_some(())
    })
    .await;
    let m = until("the metrics", Duration::from_secs(30), || {
        let m = futures_block(metrics(status));
        m.contains("pivotwatch_stream_events_total{stream=\"companies\"} 302")
            .then_some(m)
    })
    .await;
    assert!(
        m.contains("pivotwatch_stream_events_matched_total{stream=\"companies\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("pivotwatch_stream_lag_seconds{stream=\"companies\"} "),
        "{m}"
    );
    // Every stream has its connection, each with the stream key as Basic
    // user; the REST requests carry the REST key.
    for path in ["/officers", "/persons-with-significant-control", "/filings"] {
        assert!(server.log().iter().any(|(p, _)| p == path), "{path}");
    }
    for (p, a) in server.log() {
        assert_eq!(a.as_deref(), Some(STREAM_BASIC), "{p}");
    }
    for (p, a) in env.site.request_log() {
        assert_eq!(a.as_deref(), Some(super::registries::CH_BASIC), "{p}");
    }
    // The status page and the feed show the source and its finding, never the key.
    let page = get(status, "/").await;
    let feed = get(status, "/feed.atom").await;
    assert!(page.contains("harrowgate"), "{page}");
    assert!(feed.contains("officer appointed"), "{feed}");
    for shown in [&page, &feed, &m] {
        assert!(!shown.contains(super::registries::CH_KEY));
        assert!(!shown.contains(STREAM_KEY));
        assert!(!shown.contains(&super::registries::CH_BASIC[6..]));
    }
    // Let the timepoint reach the store, then restart: resumed from 900.
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop().await;
    let before = server.companies().len();
    let mut d = start(2);
    let resumed = until("the resumed connection", Duration::from_secs(30), || {
        server.companies().get(before).cloned()
    })
    .await;
    assert_eq!(resumed, "/companies?timepoint=900");
    d.stop().await;
    assert!(!d.log().contains(super::registries::CH_KEY));
    assert!(!d.log().contains(STREAM_KEY));
}

/// Runs a future to completion from a sync closure (the metrics scrape).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
