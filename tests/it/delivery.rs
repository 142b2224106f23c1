//! Alert delivery against a real SMTP server on 127.0.0.1: the `mailin`
//! SMTP state machine (parser, command sequencing, dot-unstuffing) behind a
//! tokio TCP listener, with fault injection (scripted 4xx/5xx replies, a
//! withheld final reply, stop and restart). What it received is parsed as
//! MIME with mail-parser. The crash tests run the real binary as a child
//! process and kill it with SIGKILL.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::process::stdout;
use chrono::{Timelike, Utc};
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};
use pivotwatch::alert::{self, Outcome};
use pivotwatch::app::demo::{Page, Site};
use pivotwatch::check::{CheckReport, Checker};
use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::record::Finding;
use pivotwatch::store::{Commit, SourceState, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

// ---------------------------------------------------------------- server

/// One message as the server accepted it.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    rcpt: Vec<String>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// Per recipient: reply codes for the next RCPT TO commands (then 250).
    rcpt_script: HashMap<String, VecDeque<u16>>,
    /// Every RCPT TO seen, accepted or not.
    rcpt_seen: Vec<String>,
    /// Store the message at the final `.`, but never answer it (the
    /// RFC 1047 window: the client cannot know it arrived).
    hold_final_reply: bool,
    /// Credentials AUTH PLAIN accepts; every login attempt is recorded.
    auth: Option<(String, String)>,
    auth_seen: Vec<(String, String)>,
}

#[derive(Clone)]
struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept: Arc<Mutex<Option<JoinHandle<()>>>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

struct Conn {
    shared: Arc<Mutex<Shared>>,
    ended: Arc<AtomicBool>,
    from: String,
    rcpt: Vec<String>,
    data: Vec<u8>,
}

fn lock(s: &Arc<Mutex<Shared>>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handler for Conn {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.rcpt.clear();
        self.data.clear();
        mailin::response::OK
    }
    fn rcpt(&mut self, to: &str) -> Response {
        let mut sh = lock(&self.shared);
        sh.rcpt_seen.push(to.to_string());
        let code = sh
            .rcpt_script
            .get_mut(to)
            .and_then(|q| q.pop_front())
            .unwrap_or(250);
        if code == 250 {
            mailin::response::OK
        } else {
            Response::custom(code, format!("scripted reply for {to}"))
        }
    }
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.rcpt = to.to_vec();
        mailin::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        lock(&self.shared).received.push(Received {
            from: self.from.clone(),
            rcpt: self.rcpt.clone(),
            data: std::mem::take(&mut self.data),
        });
        self.ended.store(true, Ordering::SeqCst);
        mailin::response::OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        let mut sh = lock(&self.shared);
        sh.auth_seen.push((user.to_string(), password.to_string()));
        if sh.auth.as_ref() == Some(&(user.to_string(), password.to_string())) {
            mailin::response::AUTH_OK
        } else {
            mailin::response::INVALID_CREDENTIALS
        }
    }
}

async fn serve_conn(stream: TcpStream, shared: Arc<Mutex<Shared>>, auth: bool) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let ended = Arc::new(AtomicBool::new(false));
    let mut builder = SessionBuilder::new("mx.test");
    if auth {
        builder
            .enable_auth(AuthMechanism::Plain)
            .insecure_enable_plaintext_auth();
    }
    let mut session = builder.build(
        peer,
        Conn {
            shared: shared.clone(),
            ended: ended.clone(),
            from: String::new(),
            rcpt: vec![],
            data: vec![],
        },
    );
    let write = |res: &Response| res.buffer().unwrap_or_default();
    if w.write_all(&write(&session.greeting())).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let res = session.process(&line);
        if ended.swap(false, Ordering::SeqCst) && lock(&shared).hold_final_reply {
            // Keep the connection open and silent until the client dies.
            continue;
        }
        match res.action {
            Action::Reply => {
                if w.write_all(&write(&res)).await.is_err() {
                    return;
                }
            }
            Action::Close => {
                let _ = w.write_all(&write(&res)).await;
                return;
            }
            Action::NoReply => {}
            Action::UpgradeTls => return,
        }
    }
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        SmtpServer::bind(0, Arc::new(Mutex::new(Shared::default()))).await
    }

    async fn bind(port: u16, shared: Arc<Mutex<Shared>>) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the SMTP test server");
        let addr = listener.local_addr().expect("local addr");
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (sh, cs) = (shared.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let auth = lock(&sh).auth.is_some();
                let h = tokio::spawn(serve_conn(stream, sh.clone(), auth));
                cs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(h.abort_handle());
            }
        });
        SmtpServer {
            addr,
            shared,
            accept: Arc::new(Mutex::new(Some(accept))),
            conns,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes the listener and every connection: connections are refused.
    async fn stop(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        let h = self.accept.lock().unwrap().take();
        if let Some(h) = h {
            h.abort();
            let _ = h.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    async fn restart(&self) -> SmtpServer {
        SmtpServer::bind(self.port(), self.shared.clone()).await
    }

    fn received(&self) -> Vec<Received> {
        lock(&self.shared).received.clone()
    }

    fn script_rcpt(&self, to: &str, codes: &[u16]) {
        lock(&self.shared)
            .rcpt_script
            .insert(to.to_string(), codes.iter().copied().collect());
    }

    fn rcpt_seen(&self) -> Vec<String> {
        lock(&self.shared).rcpt_seen.clone()
    }

    /// Waits (bounded) until at least `n` messages arrived.
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n || start.elapsed() > timeout {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- mail

struct Mail {
    raw: String,
    headers: Vec<(String, String)>,
    subject: String,
    message_id: String,
    to: Vec<String>,
    text: String,
    html: String,
}

fn parse(r: &Received) -> Mail {
    let msg = mail_parser::MessageParser::default()
        .parse(&r.data)
        .expect("the received data parses as MIME");
    let raw = String::from_utf8(r.data.clone()).expect("the SMTP stream is ASCII");
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.to_string(), v.trim().to_string()));
        }
    }
    Mail {
        subject: msg.subject().unwrap_or_default().to_string(),
        message_id: msg.message_id().unwrap_or_default().to_string(),
        to: msg
            .to()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.address())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        text: msg.body_text(0).unwrap_or_default().into_owned(),
        html: msg.body_html(0).unwrap_or_default().into_owned(),
        raw,
        headers,
    }
}

impl Mail {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

// ---------------------------------------------------------------- fixtures

struct Env {
    dir: tempfile::TempDir,
    site: Site,
    smtp: SmtpServer,
}

const WATCHLIST: &str = include_str!("../fixtures/delivery.toml");

const DESK: &str = r#"
[[subscriber]]
name = "desk"
to = ["desk@watchdog.test", "Second Reader <second@watchdog.test>"]
min_severity = "info"
"#;

fn shop(rows: &[(&str, &str, &str)]) -> Page {
    let body: String = rows
        .iter()
        .map(|(n, m, p)| {
            format!(
                "<tr><td class=\"n\">{n}</td><td class=\"m\">{m}</td><td class=\"p\">{p}</td></tr>"
            )
        })
        .collect();
    Page::html(format!(
        "<html><body><table id=\"products\"><tbody>{body}</tbody></table></body></html>"
    ))
}

const SCRAP: &[(&str, &str, &str)] = &[("Copper scrap", "", "CU-1"), ("Steel scrap", "", "FE-E3")];
const CHIPS: &[(&str, &str, &str)] = &[
    ("Copper scrap", "", "CU-1"),
    ("Steel scrap", "", "FE-E3"),
    ("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA"),
    ("FPGA", "Xilinx", "XC7A35T-1CPG236C"),
];

impl Env {
    async fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            site: Site::start().await.expect("site"),
            smtp: SmtpServer::start().await,
        }
    }

    /// Settings with `[smtp]` at the test server (`smtp` adds keys to it;
    /// `None` leaves `[smtp]` out) and the given subscribers.
    fn write(&self, smtp: Option<&str>, subscribers: &str) {
        let smtp = match smtp {
            Some(extra) => format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\n{}{extra}\n",
                self.smtp.port(),
                if extra.contains("timeout") {
                    ""
                } else {
                    "timeout = \"10s\"\n"
                }
            ),
            None => String::new(),
        };
        let settings = format!(
            "[store]\npath = \"state\"\n[http]\nallow_private_addresses = true\ntimeout = \"5s\"\n\
             [email]\nfrom = \"pivotwatch <alerts@pivotwatch.test>\"\nspool_dir = \"spool\"\n{smtp}{subscribers}"
        );
        std::fs::create_dir_all(self.dir.path().join("watchlists")).unwrap();
        std::fs::write(self.dir.path().join("pivotwatch.toml"), settings).unwrap();
        std::fs::write(
            self.dir.path().join("watchlists/test.toml"),
            WATCHLIST.replace("{BASE}", &self.site.base()),
        )
        .unwrap();
    }

    fn config(&self) -> Arc<Config> {
        Arc::new(
            Config::load(&LoadOptions {
                config: Some(self.dir.path().join("pivotwatch.toml")),
                watchlists: Some(self.dir.path().join("watchlists")),
                state_dir: None,
                check_address: Some(pivotwatch::alert::check_address),
            })
            .unwrap_or_else(|e| panic!("config: {e}")),
        )
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("state")).expect("store")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

async fn check(config: &Arc<Config>, store: &Store) -> Vec<CheckReport> {
    let checker = Checker::new(config.clone(), store.clone()).expect("checker");
    let ids: Vec<(String, String)> = config
        .sources()
        .map(|(e, s)| (e.id.clone(), s.id.clone()))
        .collect();
    checker.check_all(&ids).await
}

/// A finding built from JSON, so added fields with defaults do not break
/// the tests.
fn finding(
    n: usize,
    entity: &str,
    severity: &str,
    summary: &str,
    extra: serde_json::Value,
) -> Finding {
    let mut v = serde_json::json!({
        "id": 0, "entity": entity, "source": "shop", "watchlist": "test",
        "rule": "items_added", "severity": severity, "summary": summary,
        "evidence": { "url": "http://127.0.0.1:9/shop" },
        "dedup_key": format!("test-{entity}-{n}-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default()),
        "created_at": Utc::now(),
    });
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in x {
            o.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).expect("finding JSON")
}

fn commit(store: &Store, findings: Vec<Finding>, subscribers: &[&str]) -> Vec<Finding> {
    let deliveries = findings
        .iter()
        .map(|_| subscribers.iter().map(|s| s.to_string()).collect())
        .collect();
    store
        .commit(Commit {
            source: "acme/shop".into(),
            state: SourceState::default(),
            snapshot: None,
            findings,
            deliveries,
        })
        .expect("commit")
        .findings
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Two checks: the second adds Western chips, so findings are queued.
async fn pivot(env: &Env, config: &Arc<Config>, store: &Store) -> Vec<Finding> {
    env.site.set("/shop", shop(SCRAP));
    let r = check(config, store).await;
    assert!(r[0].error.is_none(), "{:?}", r[0].error);
    env.site.set("/shop", shop(CHIPS));
    let r = check(config, store).await;
    assert!(
        !r[0].findings.is_empty(),
        "the pivot raises findings: {r:?}"
    );
    store.findings().unwrap()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn smtp_delivery_reaches_a_real_server_with_exact_recipients_and_headers() {
    let env = Env::new().await;
    env.write(
        Some("security = \"none\""),
        &format!("{DESK}\n[[subscriber]]\nname = \"ops\"\nto = [\"ops@watchdog.test\"]\nmin_severity = \"info\"\n"),
    );
    let config = env.config();
    let store = env.store();
    let findings = pivot(&env, &config, &store).await;
    assert_eq!(
        store.pending_deliveries().unwrap().len(),
        findings.len() * 2
    );

    let report = alert::deliver_pending(&store, &config)
        .await
        .expect("deliver");
    assert_eq!(
        report.transport,
        format!("SMTP 127.0.0.1:{} (none)", env.smtp.port())
    );
    assert_eq!(report.sent(), findings.len() * 2, "{:?}", report.mails);
    assert!(store.outbox_all().unwrap().is_empty());
    assert_eq!(store.sent_deliveries().unwrap().len(), findings.len() * 2);

    let got = env.smtp.received();
    assert_eq!(got.len(), findings.len() * 2);
    for r in &got {
        let m = parse(r);
        assert_eq!(r.from, "alerts@pivotwatch.test");
        let f = findings
            .iter()
            .find(|f| {
                m.header("X-Pivotwatch-Finding")
                    .first()
                    .is_some_and(|h| h.starts_with(&format!("{} ", f.id)))
            })
            .expect("each mail names its finding");
        let (sub, want) = if r.rcpt.len() == 2 {
            ("desk", vec!["desk@watchdog.test", "second@watchdog.test"])
        } else {
            ("ops", vec!["ops@watchdog.test"])
        };
        assert_eq!(
            sorted(r.rcpt.clone()),
            want,
            "RCPT TO is exactly the subscriber's list"
        );
        assert_eq!(sorted(m.to.clone()), want);
        assert_eq!(
            format!("<{}>", m.message_id),
            alert::finding_message_id(&config.settings, store.installation_id(), f.id, sub)
                .unwrap()
        );
        assert!(m.subject.starts_with("[pivotwatch] "), "{}", m.subject);
        assert!(m.subject.contains("Acme Recycling"), "{}", m.subject);
        assert_eq!(m.header("Auto-Submitted"), vec!["auto-generated"]);
        assert!(
            m.header("List-Id")[0].contains("<test.pivotwatch.pivotwatch.test>"),
            "{:?}",
            m.header("List-Id")
        );
        assert!(m.header("Bcc").is_empty());
        assert_eq!(
            m.raw.matches("Content-Transfer-Encoding: base64").count(),
            2,
            "both parts are base64"
        );
        assert!(m.text.contains("TMS320F28335PGFA"), "{}", m.text);
        assert!(m.text.contains("Snapshot:"), "{}", m.text);
        assert!(m.html.contains("<table"), "{}", m.html);
        assert!(m.html.contains("Content-Security-Policy"));
        for bad in ["<img", "<script", "href=", "src="] {
            assert!(!m.html.contains(bad), "no {bad} in the HTML part");
        }
    }
}

#[tokio::test]
async fn server_down_during_a_check_keeps_alerts_queued_then_each_goes_out_once() {
    let env = Env::new().await;
    env.write(Some("security = \"none\""), DESK);
    let config = env.config();
    let store = env.store();
    env.smtp.stop().await;
    let findings = pivot(&env, &config, &store).await;

    let t0 = Utc::now();
    let report = alert::deliver_due(&store, &config, t0).await.expect("run");
    assert_eq!(report.sent(), 0);
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(
        pending.len(),
        findings.len(),
        "nothing is lost while the server is down"
    );
    // The first mail tried and failed; the rest of the subscriber's queue
    // was deferred with it instead of hammering a dead server.
    let tried: Vec<_> = pending.iter().filter(|d| d.attempts == 1).collect();
    assert_eq!(tried.len(), 1, "{pending:?}");
    let err = tried[0].last_error.as_deref().unwrap_or_default();
    assert!(err.to_lowercase().contains("refused"), "{err}");
    let next = tried[0].next_attempt.expect("a retry time");
    let wait = (next - t0).num_seconds();
    assert!(
        (48..=72).contains(&wait),
        "first retry after 1 min ± 20 %, got {wait}s"
    );
    assert_eq!(
        tried[0].history.last().map(|a| a.outcome.as_str()),
        Some("retry")
    );
    for d in &pending {
        assert!(d.next_attempt.is_some() && !d.dead, "{d:?}");
    }
    // Before the retry time nothing is tried.
    let report = alert::deliver_due(&store, &config, t0 + chrono::Duration::seconds(5))
        .await
        .unwrap();
    assert!(report.mails.is_empty(), "{:?}", report.mails);
    assert!(report.next_due.is_some_and(|t| t <= next));

    let smtp = env.smtp.restart().await;
    let later = t0 + chrono::Duration::hours(2);
    let report = alert::deliver_due(&store, &config, later).await.unwrap();
    assert_eq!(report.sent(), findings.len(), "{:?}", report.mails);
    let again = alert::deliver_due(&store, &config, later + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(again.sent(), 0);
    let got = smtp.received();
    assert_eq!(got.len(), findings.len(), "each alert exactly once");
    let mut ids: Vec<String> = got.iter().map(|r| parse(r).message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), findings.len());
    assert!(store.outbox_all().unwrap().is_empty());
}

#[tokio::test]
async fn transient_4xx_is_retried_with_backoff_then_sent_and_spares_the_others() {
    let env = Env::new().await;
    env.write(
        Some("security = \"none\""),
        "[[subscriber]]\nname = \"grey\"\nto = [\"grey@watchdog.test\"]\nmin_severity = \"info\"\n\
         [[subscriber]]\nname = \"ops\"\nto = [\"ops@watchdog.test\"]\nmin_severity = \"info\"\n",
    );
    let config = env.config();
    let store = env.store();
    let fs = commit(
        &store,
        vec![
            finding(1, "acme", "high", "one", serde_json::json!({})),
            finding(2, "acme", "high", "two", serde_json::json!({})),
        ],
        &["grey", "ops"],
    );
    // Greylisting: the first two RCPT TO for grey get 451.
    env.smtp.script_rcpt("grey@watchdog.test", &[451, 451]);
    let t0 = Utc::now();
    let r = alert::deliver_due(&store, &config, t0).await.unwrap();
    let grey: Vec<_> = r.mails.iter().filter(|m| m.subscriber == "grey").collect();
    let ops: Vec<_> = r.mails.iter().filter(|m| m.subscriber == "ops").collect();
    assert_eq!(ops.len(), 2);
    assert!(
        ops.iter()
            .all(|m| matches!(m.outcome, Outcome::Sent { .. })),
        "ops unaffected: {ops:?}"
    );
    // A 4xx is a reply about this mail, not a dead server: both grey
    // mails were tried (not deferred).
    assert_eq!(grey.len(), 2);
    for m in &grey {
        let Outcome::Retry {
            error,
            next_attempt,
        } = &m.outcome
        else {
            panic!("{m:?}")
        };
        assert!(error.contains("451"), "{error}");
        assert!(*next_attempt > t0);
        assert_eq!(m.deliveries[0].attempts, 1);
    }
    assert_eq!(store.pending_deliveries().unwrap().len(), 2);
    // Not before its time...
    let r = alert::deliver_due(&store, &config, t0 + chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert!(r.mails.is_empty());
    // ...then sent.
    let r = alert::deliver_due(&store, &config, t0 + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(r.sent(), 2, "{:?}", r.mails);
    assert!(store.outbox_all().unwrap().is_empty());
    let log = store.sent_deliveries().unwrap();
    for d in log.iter().filter(|d| d.subscriber == "grey") {
        assert_eq!(d.attempts, 2);
        let outcomes: Vec<&str> = d.history.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, vec!["retry", "sent"]);
        assert!(
            d.reply.as_deref().is_some_and(|r| r.starts_with("250")),
            "{d:?}"
        );
    }
    let grey_mails: Vec<Received> = env
        .smtp
        .received()
        .into_iter()
        .filter(|r| r.rcpt == vec!["grey@watchdog.test".to_string()])
        .collect();
    assert_eq!(grey_mails.len(), fs.len());
}

#[tokio::test]
async fn permanent_550_is_dead_after_one_attempt_and_other_subscribers_get_theirs() {
    let env = Env::new().await;
    env.write(
        Some("security = \"none\""),
        &format!("{DESK}\n[[subscriber]]\nname = \"gone\"\nto = [\"gone@watchdog.test\"]\nmin_severity = \"info\"\n"),
    );
    let config = env.config();
    let store = env.store();
    env.smtp
        .script_rcpt("gone@watchdog.test", &[550, 550, 550, 550]);
    let fs = commit(
        &store,
        vec![finding(1, "acme", "high", "one", serde_json::json!({}))],
        &["gone", "desk"],
    );
    let t0 = Utc::now();
    let r = alert::deliver_due(&store, &config, t0).await.unwrap();
    let gone = r
        .mails
        .iter()
        .find(|m| m.subscriber == "gone")
        .expect("gone tried");
    let Outcome::Dead { error } = &gone.outcome else {
        panic!("{gone:?}")
    };
    assert!(error.contains("550"), "{error}");
    assert!(
        r.mails
            .iter()
            .any(|m| m.subscriber == "desk" && matches!(m.outcome, Outcome::Sent { .. }))
    );
    let outbox = store.outbox_all().unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].dead && outbox[0].attempts == 1 && outbox[0].next_attempt.is_none());
    assert!(store.pending_deliveries().unwrap().is_empty());
    // A dead letter is never retried on its own.
    let seen = env.smtp.rcpt_seen().len();
    let r = alert::deliver_due(&store, &config, t0 + chrono::Duration::days(3))
        .await
        .unwrap();
    assert!(r.mails.is_empty());
    assert_eq!(env.smtp.rcpt_seen().len(), seen);
    // `outbox retry` requeues it: one more attempt, dead again.
    let requeued = alert::requeue(&store, Some(outbox[0].id)).unwrap();
    assert_eq!(requeued.len(), 1);
    let r = alert::deliver_due(&store, &config, t0).await.unwrap();
    assert!(matches!(r.mails[0].outcome, Outcome::Dead { .. }));
    assert_eq!(store.outbox_all().unwrap()[0].attempts, 2);
    assert!(matches!(
        alert::requeue(&store, Some(987_654)),
        Err(alert::AlertError::UnknownDelivery(_))
    ));
    let desk: Vec<_> = env
        .smtp
        .received()
        .into_iter()
        .filter(|r| r.rcpt.len() == 2)
        .collect();
    assert_eq!(desk.len(), fs.len());
}

#[tokio::test]
async fn hostile_page_text_yields_a_safe_mail_with_exactly_the_configured_recipients() {
    let env = Env::new().await;
    env.write(Some("security = \"none\""), DESK);
    let config = env.config();
    let store = env.store();
    // Through the real pipeline: hostile catalogue rows.
    env.site.set("/shop", shop(SCRAP));
    check(&config, &store).await;
    let hostile_rows: &[(&str, &str, &str)] = &[
        ("Copper scrap", "", "CU-1"),
        ("Steel scrap", "", "FE-E3"),
        (
            "&lt;script&gt;alert(1)&lt;/script&gt; DSP",
            "Texas Instruments",
            "TMS320F28335PGFA",
        ),
        (
            "&lt;img src=x onerror=alert(1)&gt;",
            "NXP\r\nBcc: x@evil.example",
            "MK64FN1M0VLL12",
        ),
    ];
    env.site.set("/shop", shop(hostile_rows));
    check(&config, &store).await;
    // And raw strings the extractor would never let through, straight
    // into a finding.
    let nasty = "Acme\r\nBcc: x@evil.example\r\n<script>alert(1)</script>";
    commit(
        &store,
        vec![finding(
            1,
            "acme",
            "critical",
            &format!("{nasty} \u{202E}gnp.exe \0 end"),
            serde_json::json!({
                "explanation": "line one\n.\nline three\r\n.\r\nline five\r.\rbare cr\n..\nend",
                "evidence": {
                    "url": "http://127.0.0.1:9/shop\"><img src=http://evil.example/x.png>",
                    "changes": [{
                        "kind": "field_changed", "field": "name",
                        "old": "Atlas\r\nBcc: y@evil.example", "new": "<img src=x onerror=alert(1)>\n.\n"
                    }],
                    "facts": { "note<script>": "<iframe src=//evil.example>" }
                }
            }),
        )],
        &["desk"],
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    assert!(r.sent() >= 2, "{:?}", r.mails);
    let got = env.smtp.received();
    assert_eq!(got.len(), r.sent());
    for rec in &got {
        assert_eq!(
            sorted(rec.rcpt.clone()),
            vec!["desk@watchdog.test", "second@watchdog.test"],
            "exactly the configured recipients, nothing from the page"
        );
        let m = parse(rec);
        assert!(m.header("Bcc").is_empty(), "{:?}", m.headers);
        assert_eq!(m.header("To").len(), 1);
        assert_eq!(m.header("Subject").len(), 1);
        assert!(
            !m.subject.contains(['\r', '\n', '\0', '\u{202E}']),
            "{:?}",
            m.subject
        );
        assert!(m.subject.chars().count() <= alert::MAX_SUBJECT);
        // Scraped text reaches the headers only sanitised, on one line...
        let subject_header = m.header("Subject")[0];
        assert!(
            !m.raw.contains("\r\nBcc:") && !m.raw.contains("\nBcc:"),
            "{}",
            m.raw
        );
        // ...and the bodies only base64-encoded.
        let body = m
            .raw
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default();
        assert!(
            !body.to_lowercase().contains("evil"),
            "no scraped byte in the body raw:\n{body}"
        );
        assert!(
            !body.contains("<script") && !body.contains("onerror"),
            "{body}"
        );
        assert!(!subject_header.is_empty());
        for line in m.raw.split("\r\n") {
            assert!(line.len() <= 998);
            assert_ne!(line, ".", "no line is a lone dot");
        }
        assert!(!m.raw.contains('\0'));
        for bad in ["<script", "<img", "<iframe", "onerror=alert(1)>"] {
            assert!(!m.html.contains(bad), "{bad} escaped in:\n{}", m.html);
        }
    }
    let direct = got
        .iter()
        .map(parse)
        .find(|m| m.subject.contains("CRITICAL"))
        .expect("the direct finding's mail");
    assert!(
        direct
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        direct.html
    );
    assert!(
        direct.html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        direct.html
    );
    // The text survives intact, just safely encoded: the lone dots are there.
    // (text/plain travels with CRLF line ends.)
    let text = direct.text.replace("\r\n", "\n");
    assert!(
        text.contains("line one\n.\nline three\n.\nline five\n.\nbare cr\n..\nend"),
        "{text:?}"
    );
    assert!(
        direct
            .subject
            .starts_with("[pivotwatch] CRITICAL Acme Recycling: Acme Bcc: x@evil.example <script>"),
        "{}",
        direct.subject
    );
}

#[tokio::test]
async fn digest_sends_ten_findings_as_one_mail_when_its_schedule_comes() {
    let env = Env::new().await;
    env.write(
        Some("security = \"none\""),
        "[[subscriber]]\nname = \"weekly\"\nto = [\"digest@watchdog.test\"]\nmin_severity = \"info\"\n\
         mode = \"digest\"\ndigest_schedule = \"0 8 * * *\"\ntimezone = \"Asia/Tokyo\"\n\
         [[subscriber]]\nname = \"ops\"\nto = [\"ops@watchdog.test\"]\nmin_severity = \"info\"\n",
    );
    let config = env.config();
    let store = env.store();
    let sevs = ["low", "high", "medium", "critical", "info"];
    let fs: Vec<Finding> = (0..10)
        .map(|i| {
            let entity = if i % 2 == 0 { "acme" } else { "zenith" };
            finding(
                i,
                entity,
                sevs[i % 5],
                &format!("finding number {i}"),
                serde_json::json!({}),
            )
        })
        .collect();
    let fs = commit(&store, fs, &["weekly", "ops"]);
    let sub = alert::subscriber(&config.settings, "weekly")
        .unwrap()
        .into_owned();
    let due =
        alert::next_digest_due(&sub, None, &store.pending_deliveries().unwrap()).expect("due time");
    assert!(due > Utc::now());
    let local = due.with_timezone(&chrono_tz::Asia::Tokyo);
    assert_eq!(
        (local.hour(), local.minute()),
        (8, 0),
        "read in the subscriber's timezone"
    );

    // Immediate subscribers get theirs at once; the digest waits.
    let r = alert::deliver_due(&store, &config, due - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(r.sent(), 10);
    assert!(r.mails.iter().all(|m| m.subscriber == "ops"));
    assert_eq!(r.next_due, Some(due));
    assert_eq!(store.pending_deliveries().unwrap().len(), 10);

    let r = alert::deliver_due(&store, &config, due + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(r.mails.len(), 1, "{:?}", r.mails);
    assert!(r.mails[0].digest);
    assert_eq!(r.mails[0].deliveries.len(), 10);
    let digests: Vec<Received> = env
        .smtp
        .received()
        .into_iter()
        .filter(|r| r.rcpt == vec!["digest@watchdog.test".to_string()])
        .collect();
    assert_eq!(digests.len(), 1, "ten findings, one mail");
    let m = parse(&digests[0]);
    assert!(m.message_id.starts_with("digest-"), "{}", m.message_id);
    assert_eq!(m.header("X-Pivotwatch-Digest"), vec!["10 findings"]);
    assert!(
        m.subject
            .starts_with("[pivotwatch] digest: 10 findings on 2 entities"),
        "{}",
        m.subject
    );
    for f in &fs {
        assert!(m.text.contains(&f.summary), "{} missing", f.summary);
    }
    // Grouped by entity, most severe first within each.
    let acme = m
        .text
        .find("==== Acme Recycling (acme)")
        .expect("acme group");
    let zenith = m.text.find("==== zenith (zenith)").expect("zenith group");
    let (first, second) = if acme < zenith {
        (acme, zenith)
    } else {
        (zenith, acme)
    };
    let block = &m.text[first..second];
    let order: Vec<usize> = ["-- CRITICAL", "-- HIGH", "-- MEDIUM", "-- LOW", "-- INFO"]
        .iter()
        .filter_map(|h| block.find(h))
        .collect();
    assert!(
        order.len() >= 3 && order.windows(2).all(|w| w[0] < w[1]),
        "{block}"
    );
    assert!(store.pending_deliveries().unwrap().is_empty());
    let state = store.digest_state("weekly").unwrap().expect("digest state");
    assert_eq!(state.findings, 10);

    // A new finding waits for the next occurrence.
    commit(
        &store,
        vec![finding(
            11,
            "acme",
            "high",
            "eleventh",
            serde_json::json!({}),
        )],
        &["weekly"],
    );
    let r = alert::deliver_due(&store, &config, due + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert!(r.mails.is_empty(), "{:?}", r.mails);
    let next = r.next_due.expect("next digest");
    assert_eq!((next - due).num_hours(), 24);
    let r = alert::deliver_due(&store, &config, next + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(r.mails.len(), 1);
    assert_eq!(r.mails[0].deliveries.len(), 1);
}

#[tokio::test]
async fn starttls_is_required_by_default_and_tls_never_falls_back_to_plain() {
    let env = Env::new().await;
    // No `security`: the default, starttls. The test server offers no
    // STARTTLS, so nothing may be sent.
    env.write(Some(""), DESK);
    let config = env.config();
    let store = env.store();
    commit(
        &store,
        vec![finding(1, "acme", "high", "one", serde_json::json!({}))],
        &["desk"],
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    let Outcome::Retry { error, .. } = &r.mails[0].outcome else {
        panic!("{:?}", r.mails)
    };
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(env.smtp.received().is_empty());
    assert!(env.smtp.rcpt_seen().is_empty(), "no envelope before TLS");
    assert_eq!(store.pending_deliveries().unwrap().len(), 1, "stays queued");

    env.write(Some("security = \"tls\""), DESK);
    let config = env.config();
    let later = Utc::now() + chrono::Duration::hours(1);
    let r = alert::deliver_due(&store, &config, later).await.unwrap();
    assert!(
        matches!(r.mails[0].outcome, Outcome::Retry { .. }),
        "{:?}",
        r.mails
    );
    assert!(env.smtp.received().is_empty());
}

#[tokio::test]
async fn password_file_logs_in_and_a_refused_login_keeps_alerts_queued() {
    let env = Env::new().await;
    lock(&env.smtp.shared).auth = Some(("pivotwatch".into(), "s3cret-Pa55".into()));
    let pw = env.path().join("smtp_password");
    std::fs::write(&pw, "s3cret-Pa55\n").unwrap();
    env.write(
        Some(&format!(
            "security = \"none\"\nusername = \"pivotwatch\"\npassword_file = \"{}\"",
            pw.display()
        )),
        DESK,
    );
    let config = env.config();
    let store = env.store();
    commit(
        &store,
        vec![finding(1, "acme", "high", "one", serde_json::json!({}))],
        &["desk"],
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    assert_eq!(r.sent(), 1, "{:?}", r.mails);
    assert_eq!(
        lock(&env.smtp.shared).auth_seen,
        vec![("pivotwatch".to_string(), "s3cret-Pa55".to_string())],
        "the trailing newline of the file is not part of the password"
    );

    // A wrong password (535) is the operator's problem, not the mail's: it
    // stays queued, and no error text carries the password.
    std::fs::write(&pw, "wrong-Pa55").unwrap();
    commit(
        &store,
        vec![finding(2, "acme", "high", "two", serde_json::json!({}))],
        &["desk"],
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    let Outcome::Retry { error, .. } = &r.mails[0].outcome else {
        panic!("{:?}", r.mails)
    };
    assert!(error.contains("535"), "{error}");
    let stored = serde_json::to_string(&store.outbox_all().unwrap()).unwrap();
    assert!(!stored.contains("Pa55") && !error.contains("Pa55"));
    assert!(
        !format!(
            "{:?}",
            alert::Transport::from_settings(&config.settings).unwrap()
        )
        .contains("Pa55")
    );

    // A missing password file stops the run before anything is touched.
    std::fs::remove_file(&pw).unwrap();
    let before = store.outbox_all().unwrap();
    let e = alert::deliver_due(&store, &config, Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("password_file"), "{e}");
    assert!(e.to_string().contains("stays queued"), "{e}");
    assert_eq!(store.outbox_all().unwrap(), before);
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_dropped_connection_is_retried() {
    let env = Env::new().await;
    // A server that accepts and never speaks.
    let silent = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    env.write(None, DESK);
    let settings = std::fs::read_to_string(env.path().join("pivotwatch.toml")).unwrap();
    std::fs::write(
        env.path().join("pivotwatch.toml"),
        format!("{settings}\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout = \"1s\"\n"),
    )
    .unwrap();
    let config = env.config();
    let store = env.store();
    commit(
        &store,
        vec![
            finding(1, "acme", "high", "one", serde_json::json!({})),
            finding(2, "acme", "high", "two", serde_json::json!({})),
        ],
        &["desk"],
    );
    let start = Instant::now();
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "bounded by [smtp] timeout, took {took:?}"
    );
    let Outcome::Retry { error, .. } = &r.mails[0].outcome else {
        panic!("{:?}", r.mails)
    };
    assert!(error.contains("within 1s"), "{error}");
    assert!(
        matches!(r.mails[1].outcome, Outcome::Deferred { .. }),
        "{:?}",
        r.mails[1]
    );
    assert_eq!(store.pending_deliveries().unwrap().len(), 2);

    // A server that hangs up at once.
    let rude = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let rude_port = rude.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = rude.accept().await {
            drop(s);
        }
    });
    std::fs::write(
        env.path().join("pivotwatch.toml"),
        format!("{settings}\n[smtp]\nhost = \"127.0.0.1\"\nport = {rude_port}\nsecurity = \"none\"\ntimeout = \"2s\"\n"),
    )
    .unwrap();
    let config = env.config();
    let r = alert::deliver_due(&store, &config, Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(
        matches!(r.mails[0].outcome, Outcome::Retry { .. }),
        "{:?}",
        r.mails
    );
    let d = store.pending_deliveries().unwrap();
    assert!(d.iter().all(|d| !d.dead));
    assert_eq!(d.iter().map(|d| d.attempts).max(), Some(2));
}

#[tokio::test]
async fn spool_files_are_named_by_message_id_so_a_resend_replaces_them() {
    let env = Env::new().await;
    env.write(None, DESK);
    let config = env.config();
    let store = env.store();
    let fs = commit(
        &store,
        vec![finding(1, "acme", "high", "one", serde_json::json!({}))],
        &["desk"],
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    let Outcome::Sent {
        file: Some(path), ..
    } = &r.mails[0].outcome
    else {
        panic!("{:?}", r.mails)
    };
    let id = alert::finding_message_id(&config.settings, store.installation_id(), fs[0].id, "desk")
        .unwrap();
    let stem = id.trim_matches(['<', '>']).replace('@', "_");
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        format!("{stem}.eml")
    );
    let names: Vec<String> = std::fs::read_dir(env.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![format!("{stem}.eml")],
        "no temporary file left behind"
    );
    let m = parse(&Received {
        from: String::new(),
        rcpt: vec![],
        data: std::fs::read(path).unwrap(),
    });
    assert_eq!(format!("<{}>", m.message_id), id);
    assert_eq!(
        sorted(m.to),
        vec!["desk@watchdog.test", "second@watchdog.test"]
    );
}

#[tokio::test]
async fn delivery_loop_drains_the_outbox_until_shutdown_and_notices_reach_maintainers() {
    let env = Env::new().await;
    env.write(Some("security = \"none\""), DESK);
    let config = env.config();
    let store = env.store();
    let n = 50;
    commit(
        &store,
        (0..n)
            .map(|i| {
                finding(
                    i,
                    "acme",
                    "high",
                    &format!("loop {i}"),
                    serde_json::json!({}),
                )
            })
            .collect(),
        &["desk"],
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn(alert::delivery_loop(store.clone(), config.clone(), async {
        let _ = stopped.await;
    }));
    let got = env.smtp.wait_for(n, Duration::from_secs(60)).await;
    let took = start.elapsed();
    assert_eq!(got.len(), n);
    eprintln!("delivery_loop: {n} mails over loopback SMTP in {took:?}");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the loop stops on shutdown")
        .expect("no panic");
    assert!(store.outbox_all().unwrap().is_empty());

    let wl = &config.watchlists[0];
    let sent = alert::send_notice(
        &config,
        store.installation_id(),
        wl,
        "source acme/shop is broken",
        "The row selector matched nothing\n.\n3 checks in a row.",
        "acme/shop broken 3",
    )
    .await
    .expect("notice")
    .expect("the watchlist has maintainers");
    assert!(sent.reply.starts_with("250"), "{}", sent.reply);
    let last = env.smtp.received().pop().unwrap();
    assert_eq!(last.rcpt, vec!["analyst@example.org".to_string()]);
    assert_eq!(
        parse(&last).subject,
        "[pivotwatch] source acme/shop is broken"
    );
}

// ---------------------------------------------------------------- the binary

async fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pivotwatch"));
    c.current_dir(dir).args(args).env("RUST_LOG", "off");
    for (k, v) in envs {
        c.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .expect("pivotwatch finishes")
        .expect("run pivotwatch")
}

fn finding_ids(dir: &Path) -> Vec<u64> {
    Store::open(&dir.join("state"))
        .unwrap()
        .findings()
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_commit_and_send_loses_nothing_and_a_resend_keeps_its_message_id() {
    let env = Env::new().await;
    env.write(Some("security = \"none\"\ntimeout = \"30s\""), DESK);
    let dir = env.path().to_path_buf();
    env.site.set("/shop", shop(SCRAP));
    let o = run(&dir, &["once"], &[]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // 1. Killed after the commit, before any delivery.
    env.site.set("/shop", shop(CHIPS));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pivotwatch"))
        .current_dir(&dir)
        .arg("once")
        .env("RUST_LOG", "off")
        .env(alert::TEST_PAUSE_ENV, "60000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pivotwatch");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains(alert::TEST_PAUSE_ENV) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(announced, Ok(true), "the child reached the pause");
    child.kill().await.expect("SIGKILL");
    assert!(env.smtp.received().is_empty(), "killed before sending");
    let ids = finding_ids(&dir);
    assert!(
        !ids.is_empty(),
        "the findings were committed before the kill"
    );
    {
        let store = Store::open(&dir.join("state")).unwrap();
        assert_eq!(store.pending_deliveries().unwrap().len(), ids.len());
    }
    let o = run(&dir, &["once"], &[]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("sent to desk"), "{}", stdout(&o));
    let got = env.smtp.received();
    assert_eq!(got.len(), ids.len(), "each alert once after the restart");
    let config = env.config();
    let installation = Store::open(&dir.join("state"))
        .unwrap()
        .installation_id()
        .to_string();
    let mut want: Vec<String> = ids
        .iter()
        .map(|id| alert::finding_message_id(&config.settings, &installation, *id, "desk").unwrap())
        .collect();
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| format!("<{}>", parse(r).message_id))
        .collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);

    // 2. Killed after the server has the message but before its `250`
    //    (RFC 1047): the restart sends it again, with the same Message-ID.
    let before = env.smtp.received().len();
    lock(&env.smtp.shared).hold_final_reply = true;
    {
        // Queued by an earlier run: `once` drains it after its (unchanged) checks.
        let store = Store::open(&dir.join("state")).unwrap();
        commit(
            &store,
            vec![finding(
                1,
                "acme",
                "high",
                "held reply",
                serde_json::json!({}),
            )],
            &["desk"],
        );
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pivotwatch"))
        .current_dir(&dir)
        .arg("once")
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pivotwatch");
    let got = env.smtp.wait_for(before + 1, Duration::from_secs(60)).await;
    assert_eq!(
        got.len(),
        before + 1,
        "the server holds one unanswered message"
    );
    child.kill().await.expect("SIGKILL");
    lock(&env.smtp.shared).hold_final_reply = false;
    let held = parse(&got[before]);
    let o = run(&dir, &["once"], &[]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("may arrive twice"), "{}", stdout(&o));
    let all = env.smtp.received();
    let copies: Vec<Mail> = all[before..]
        .iter()
        .map(parse)
        .filter(|m| m.message_id == held.message_id)
        .collect();
    assert_eq!(copies.len(), 2, "the duplicate carries the same Message-ID");
    assert_eq!(copies[0].subject, copies[1].subject);
    assert_eq!(copies[0].text, copies[1].text);
    let ids = finding_ids(&dir);
    let mut distinct: Vec<String> = all.iter().map(|r| parse(r).message_id).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "every finding delivered, only the ambiguous one twice"
    );
    assert_eq!(all.len(), ids.len() + 1);
    let store = Store::open(&dir.join("state")).unwrap();
    assert!(store.outbox_all().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_lists_dead_letters_and_retry_sends_them() {
    let env = Env::new().await;
    env.write(Some("security = \"none\""), DESK);
    let dir = env.path().to_path_buf();
    {
        let store = env.store();
        commit(
            &store,
            vec![finding(1, "acme", "high", "bounced", serde_json::json!({}))],
            &["desk"],
        );
    }
    let o = run(&dir, &["outbox"], &[]).await;
    assert!(stdout(&o).contains("queued"), "{}", stdout(&o));
    env.smtp.script_rcpt("second@watchdog.test", &[550]);
    let o = run(&dir, &["once"], &[]).await;
    assert!(stdout(&o).contains("failed permanently"), "{}", stdout(&o));

    let o = run(&dir, &["outbox"], &[]).await;
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.contains("dead") && text.contains("550"), "{text}");
    assert!(text.contains("0 pending, 1 dead"), "{text}");
    let o = run(&dir, &["outbox", "list", "--json"], &[]).await;
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "dead");
    assert_eq!(rows[0]["attempts"], 1);
    let id = rows[0]["id"].as_u64().expect("id").to_string();

    let o = run(&dir, &["outbox", "retry", "424242"], &[]).await;
    assert_eq!(o.status.code(), Some(2), "unknown id is a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no delivery 424242"));

    let o = run(&dir, &["outbox", "retry", &id], &[]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("sent to desk"), "{}", stdout(&o));
    assert_eq!(env.smtp.received().len(), 1);
    let o = run(&dir, &["outbox"], &[]).await;
    assert!(stdout(&o).contains("outbox empty"), "{}", stdout(&o));

    // retry --all with nothing to do is fine.
    let o = run(&dir, &["outbox", "retry", "--all"], &[]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("requeued 0"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_email_logs_in_with_password_env_and_names_unknown_subscribers() {
    let env = Env::new().await;
    lock(&env.smtp.shared).auth = Some(("pw-user".into(), "env-Secret-9".into()));
    env.write(
        Some("security = \"none\"\nusername = \"pw-user\"\npassword_env = \"PIVOTWATCH_TEST_SMTP_PW\""),
        DESK,
    );
    let dir = env.path().to_path_buf();
    let o = run(
        &dir,
        &["send-test-email", "desk"],
        &[("PIVOTWATCH_TEST_SMTP_PW", "env-Secret-9")],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout(&o).contains("test mail sent to desk@watchdog.test"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("env-Secret-9"));
    let got = env.smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        sorted(got[0].rcpt.clone()),
        vec!["desk@watchdog.test", "second@watchdog.test"]
    );
    assert_eq!(parse(&got[0]).subject, "[pivotwatch] test message for desk");

    let o = run(&dir, &["send-test-email", "desk"], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("PIVOTWATCH_TEST_SMTP_PW"), "{err}");

    let o = run(
        &dir,
        &["send-test-email", "nobody"],
        &[("PIVOTWATCH_TEST_SMTP_PW", "x")],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no subscriber \"nobody\""));
}

#[test]
fn settings_refuse_plaintext_smtp_off_loopback_and_half_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchlists")).unwrap();
    let cases = [
        (
            "[smtp]\nhost = \"mail.example.org\"\nsecurity = \"none\"\n",
            "only allowed to a loopback host",
        ),
        (
            "[smtp]\nhost = \"mail.example.org\"\nusername = \"u\"\n",
            "no password source",
        ),
        (
            "[smtp]\nhost = \"mail.example.org\"\npassword = \"x\"\n",
            "never read from the settings file",
        ),
        (
            "[[subscriber]]\nname = \"d\"\nto = [\"d@example.org\"]\nmode = \"digest\"\ndigest_schedule = \"0 8 * * *\"\ntimezone = \"Mars/Olympus\"\n",
            "unknown timezone",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("pivotwatch.toml"), text).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pivotwatch"))
            .current_dir(dir.path())
            .arg("check")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{text}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{text} → {err}");
    }
}

#[tokio::test]
async fn two_fresh_stores_send_different_message_ids_and_both_spool_files_are_kept() {
    let env = Env::new().await;
    env.write(None, DESK);
    let config = env.config();
    let spool = env.path().join("spool");
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    for (name, summary) in [("state-a", "from store A"), ("state-b", "from store B")] {
        // The same scenario in a fresh store: the same finding id.
        let store = Store::open(&env.path().join(name)).expect("store");
        let fs = commit(
            &store,
            vec![finding(1, "acme", "high", summary, serde_json::json!({}))],
            &["desk"],
        );
        let r = alert::deliver_pending(&store, &config).await.unwrap();
        let Outcome::Sent {
            file: Some(path), ..
        } = &r.mails[0].outcome
        else {
            panic!("{:?}", r.mails)
        };
        assert_eq!(
            r.mails[0].message_id,
            alert::finding_message_id(&config.settings, store.installation_id(), fs[0].id, "desk")
                .unwrap()
        );
        ids.push((fs[0].id, r.mails[0].message_id.clone()));
        paths.push(path.clone());
    }
    assert_eq!(ids[0].0, ids[1].0, "both stores numbered the finding alike");
    assert_ne!(ids[0].1, ids[1].1, "but their Message-IDs differ");
    assert_ne!(paths[0], paths[1]);
    let mut names: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "both mails kept: {names:?}");
    for (path, (summary, (_, id))) in paths
        .iter()
        .zip(["from store A", "from store B"].iter().zip(&ids))
    {
        let m = parse(&Received {
            from: String::new(),
            rcpt: vec![],
            data: std::fs::read(path).unwrap(),
        });
        assert_eq!(&format!("<{}>", m.message_id), id);
        assert!(m.text.contains(summary), "{}", m.text);
    }
}

#[tokio::test]
async fn a_resend_from_the_same_store_keeps_its_message_id_and_its_spool_file() {
    let env = Env::new().await;
    env.write(None, DESK);
    let config = env.config();
    let store = env.store();
    let fs = commit(
        &store,
        vec![finding(1, "acme", "high", "resent", serde_json::json!({}))],
        &["desk"],
    );
    let first =
        alert::finding_message_id(&config.settings, store.installation_id(), fs[0].id, "desk")
            .unwrap();
    // The process dies after the file is written, before the outbox says
    // so: the delivery is still queued, marked in flight.
    let mut d = store.pending_deliveries().unwrap();
    d[0].in_flight = Some(Utc::now());
    d[0].message_id = Some(first.clone());
    store.note_in_flight(&d).unwrap();
    let sub = alert::subscriber(&config.settings, "desk").unwrap();
    let mail = alert::render(
        &config.settings,
        store.installation_id(),
        config.entity("acme"),
        &fs[0],
        &sub,
        &d[0],
    )
    .unwrap();
    let transport = alert::Transport::from_settings(&config.settings).unwrap();
    let written = transport.send(&mail).await.expect("spooled");
    drop(store);

    let store = env.store();
    assert_eq!(
        alert::finding_message_id(&config.settings, store.installation_id(), fs[0].id, "desk")
            .unwrap(),
        first,
        "the same store, reopened, gives the same Message-ID"
    );
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    assert_eq!(r.mails.len(), 1);
    assert_eq!(r.mails[0].message_id, first);
    assert!(r.mails[0].possible_duplicate);
    let Outcome::Sent { file, reply } = &r.mails[0].outcome else {
        panic!("{:?}", r.mails)
    };
    assert_eq!(file, &written.file);
    assert!(reply.starts_with("already in the spool folder"), "{reply}");
    let names: Vec<_> = std::fs::read_dir(env.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "one file for one mail: {names:?}");
    assert!(store.outbox_all().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_1_when_a_delivery_went_dead() {
    let env = Env::new().await;
    env.write(Some("security = \"none\""), DESK);
    env.site.set("/shop", shop(SCRAP));
    let dir = env.path().to_path_buf();
    let queue = |summary: &str| {
        let store = env.store();
        commit(
            &store,
            vec![finding(1, "acme", "high", summary, serde_json::json!({}))],
            &["desk"],
        );
    };
    queue("accepted");
    let o = run(&dir, &["once"], &[]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "checks fine, mail accepted: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    queue("bounced");
    env.smtp.script_rcpt("second@watchdog.test", &[550]);
    let o = run(&dir, &["once"], &[]).await;
    assert!(stdout(&o).contains("failed permanently"), "{}", stdout(&o));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a dead letter is a failure: {}",
        stdout(&o)
    );
    let o = run(&dir, &["outbox", "list", "--json"], &[]).await;
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "dead");
}

#[tokio::test]
async fn a_delivery_resends_with_the_message_id_its_first_attempt_used() {
    let env = Env::new().await;
    env.write(None, DESK);
    let config = env.config();
    let store = env.store();
    let fs = commit(
        &store,
        vec![
            finding(1, "acme", "high", "old id", serde_json::json!({})),
            finding(2, "acme", "high", "digest id", serde_json::json!({})),
        ],
        &["desk"],
    );
    // An attempt by an older pivotwatch (no installation id), interrupted;
    // and a delivery that last went out in a digest.
    let old = format!("<finding-{}.0123456789ab@pivotwatch.test>", fs[0].id);
    let mut d = store.pending_deliveries().unwrap();
    d.sort_by_key(|d| d.finding);
    d[0].in_flight = Some(Utc::now());
    d[0].message_id = Some(old.clone());
    d[1].message_id = Some("<digest-aaaa.bbbb.cccc@pivotwatch.test>".into());
    store.note_in_flight(&d).unwrap();
    let r = alert::deliver_pending(&store, &config).await.unwrap();
    let mut got: Vec<(u64, String)> = r
        .mails
        .iter()
        .map(|m| (m.findings()[0], m.message_id.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (fs[0].id, old),
            (
                fs[1].id,
                alert::finding_message_id(
                    &config.settings,
                    store.installation_id(),
                    fs[1].id,
                    "desk"
                )
                .unwrap()
            )
        ]
    );
}
