//! The kill -9 delivery loop (tests/it/crash_delivery.rs runs it briefly,
//! benches/crash_delivery.rs at length; BENCHMARKS.md has the figures).
//!
//! Each iteration: a fresh state directory whose store holds `findings`
//! queued alerts for one subscriber; a real `pivotwatch once` process
//! delivering them through a real SMTP server on loopback; SIGKILL at a
//! random moment of its delivery phase (uniform over 0 … 1.2 × the
//! calibrated length of an uninterrupted delivery phase, measured from the
//! process's "committed; pausing 0 ms before delivery" line); then `once`
//! again until the outbox is empty. Counted: findings, mails received,
//! lost (a finding no mail carried), duplicates (mails beyond the first
//! per finding), and wrong ids (a mail whose Message-ID is not its
//! finding's: a duplicate must be recognisably the same mail).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use pivotwatch::alert;
use pivotwatch::app::demo::{Page, Site};
use pivotwatch::config::{Config, LoadOptions};
use pivotwatch::record::Finding;
use pivotwatch::store::{Commit, SourceState, Store};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::smtp::SmtpServer;

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// The pivotwatch binary.
    pub bin: PathBuf,
    /// Iterations (one kill each).
    pub iterations: usize,
    /// Alerts queued per iteration.
    pub findings: usize,
    /// Seed of the kill times.
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub iterations: usize,
    pub findings: usize,
    pub mails: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub wrong_ids: usize,
    /// Kills that found the process still running.
    pub kills_live: usize,
    /// `once` runs after the kill until the outbox was empty.
    pub restarts: usize,
    /// Calibrated length of an uninterrupted delivery phase.
    pub delivery_phase: Duration,
    pub took: Duration,
}

impl Figures {
    /// Duplicates as a percentage of findings.
    pub fn duplicate_pct(&self) -> f64 {
        100.0 * self.duplicates as f64 / self.findings.max(1) as f64
    }

    /// One line for a log or BENCHMARKS.md.
    pub fn line(&self) -> String {
        format!(
            "{} iterations, {} findings, {} mails, {} lost, {} duplicates ({:.2} % of findings), {} wrong Message-IDs; {} kills hit a live process, {} restarts; delivery phase {:.1} ms; {:.0} s",
            self.iterations,
            self.findings,
            self.mails,
            self.lost,
            self.duplicates,
            self.duplicate_pct(),
            self.wrong_ids,
            self.kills_live,
            self.restarts,
            self.delivery_phase.as_secs_f64() * 1000.0,
            self.took.as_secs_f64()
        )
    }
}

const WATCHLIST: &str = include_str!("../../fixtures/crash_loop.toml");

const PAGE: &str = "<html><body><table id=\"products\"><tbody><tr><td class=\"n\">Copper scrap</td></tr></tbody></table></body></html>";

fn write_config(dir: &Path, smtp_port: u16, base: &str) {
    std::fs::create_dir_all(dir.join("watchlists")).expect("mkdir");
    std::fs::write(
        dir.join("pivotwatch.toml"),
        format!(
            "[store]\npath = \"state\"\n[http]\nallow_private_addresses = true\ntimeout = \"5s\"\n\
             [email]\nfrom = \"pivotwatch <alerts@pivotwatch.test>\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\ntimeout = \"10s\"\n\
             [[subscriber]]\nname = \"desk\"\nto = [\"desk@watchdog.test\"]\nmin_severity = \"info\"\n"
        ),
    )
    .expect("settings");
    std::fs::write(
        dir.join("watchlists/crash.toml"),
        WATCHLIST.replace("{BASE}", base),
    )
    .expect("watchlist");
}

fn finding(n: usize) -> Finding {
    serde_json::from_value(serde_json::json!({
        "id": 0, "entity": "acme", "source": "shop", "watchlist": "crash",
        "rule": "items_added", "severity": "high",
        "summary": format!("crash loop finding {n}"),
        "evidence": { "url": "http://127.0.0.1:9/shop" },
        "dedup_key": format!("crash-{n}"),
        "created_at": Utc::now(),
    }))
    .expect("finding JSON")
}

/// Queues `n` alerts; returns the Message-ID each must carry.
fn queue(dir: &Path, n: usize) -> BTreeMap<u64, String> {
    let config = Config::load(&LoadOptions {
        config: Some(dir.join("pivotwatch.toml")),
        watchlists: Some(dir.join("watchlists")),
        state_dir: None,
        check_address: Some(pivotwatch::alert::check_address),
    })
    .expect("config");
    let store = Store::open(&dir.join("state")).expect("store");
    let committed = store
        .commit(Commit {
            source: "acme/shop".into(),
            state: SourceState::default(),
            snapshot: None,
            findings: (0..n).map(finding).collect(),
            deliveries: vec![vec!["desk".to_string()]; n],
        })
        .expect("commit");
    store.flush().expect("flush");
    let installation = store.installation_id().to_string();
    drop(store);
    wait_unlocked(dir);
    committed
        .findings
        .iter()
        .map(|f| {
            let id = alert::finding_message_id(&config.settings, &installation, f.id, "desk")
                .expect("Message-ID");
            (f.id, id)
        })
        .collect()
}

fn pending(dir: &Path) -> usize {
    let n = Store::open(&dir.join("state"))
        .expect("store")
        .pending_deliveries()
        .expect("outbox")
        .len();
    wait_unlocked(dir);
    n
}

/// Waits until sled, dropped in this process a moment ago, has released its
/// file lock (its flusher thread lets go of the database asynchronously),
/// so that the `pivotwatch` started next does not find the store "in use".
/// The lock is sled's `flock` on `state/db/db`.
fn wait_unlocked(dir: &Path) {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = std::fs::File::open(dir.join("state/db/db")).expect("sled's db file");
    loop {
        // SAFETY: flock on a file descriptor this function owns for the
        // duration of the call; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sled kept its lock 10 s after the store was dropped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn command(bin: &Path, dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin);
    c.current_dir(dir)
        .arg("once")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs `once` with the pause hook at 0 ms; kills it `after` the
/// announcement (never, when `None`). Returns how long the process ran
/// after the announcement, and whether the kill found it alive.
async fn once_killed(bin: &Path, dir: &Path, after: Option<Duration>) -> (Duration, bool) {
    let mut child = command(bin, dir)
        .env(alert::TEST_PAUSE_ENV, "0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pivotwatch");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains(alert::TEST_PAUSE_ENV) {
                return true;
            }
            seen.push(l);
        }
        false
    })
    .await;
    assert_eq!(
        announced,
        Ok(true),
        "pivotwatch did not reach the delivery phase; its stderr:\n{}",
        seen.join("\n")
    );
    let start = Instant::now();
    // Drain stderr so the child never blocks on it.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut live = false;
    if let Some(after) = after {
        // A blocking sleep: finer than the tokio timer's millisecond.
        tokio::task::spawn_blocking(move || std::thread::sleep(after))
            .await
            .expect("sleep");
        live = matches!(child.try_wait(), Ok(None));
        let _ = child.start_kill();
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("pivotwatch ends");
    let ran = start.elapsed();
    let _ = drain.await;
    (ran, live)
}

/// Message-ID and X-Pivotwatch-Finding id of a received mail.
fn ids(data: &[u8]) -> (String, Option<u64>) {
    let msg = mail_parser::MessageParser::default()
        .parse(data)
        .expect("the received data parses as MIME");
    let finding = msg
        .header("X-Pivotwatch-Finding")
        .and_then(|h| h.as_text())
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    (
        format!("<{}>", msg.message_id().unwrap_or_default()),
        finding,
    )
}

/// Runs the loop.
pub async fn run(p: &Params) -> Figures {
    let started = Instant::now();
    let smtp = SmtpServer::start().await;
    let site = Site::start().await.expect("site");
    site.set("/shop", Page::html(PAGE));
    let mut rng = fastrand::Rng::with_seed(p.seed);

    // Calibration: three uninterrupted delivery phases, the median.
    let mut phases = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(dir.path(), smtp.addr.port(), &site.base());
        let want = queue(dir.path(), p.findings);
        let (ran, _) = once_killed(&p.bin, dir.path(), None).await;
        assert_eq!(pending(dir.path()), 0, "an uninterrupted run delivers all");
        assert_eq!(smtp.take().len(), want.len());
        phases.push(ran);
    }
    phases.sort();
    let phase = phases[1];

    let mut fig = Figures {
        delivery_phase: phase,
        ..Figures::default()
    };
    for _ in 0..p.iterations {
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(dir.path(), smtp.addr.port(), &site.base());
        let want = queue(dir.path(), p.findings);
        let at = phase.mul_f64(1.2 * rng.f64());
        let (_, live) = once_killed(&p.bin, dir.path(), Some(at)).await;
        fig.kills_live += usize::from(live);
        let mut tries = 0;
        while pending(dir.path()) > 0 {
            tries += 1;
            assert!(tries <= 10, "the outbox empties within 10 restarts");
            let o = tokio::time::timeout(
                Duration::from_secs(120),
                command(&p.bin, dir.path()).output(),
            )
            .await
            .expect("once finishes")
            .expect("run once");
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        fig.restarts += tries;
        let got = smtp.take();
        let mut per: BTreeMap<u64, usize> = BTreeMap::new();
        for r in &got {
            let (mid, f) = ids(&r.data);
            if r.rcpt != ["desk@watchdog.test"] {
                fig.wrong_ids += 1;
                continue;
            }
            match f.and_then(|f| want.get(&f).map(|w| (f, w))) {
                Some((f, w)) if *w == mid => *per.entry(f).or_default() += 1,
                _ => fig.wrong_ids += 1,
            }
        }
        fig.iterations += 1;
        fig.findings += want.len();
        fig.mails += got.len();
        fig.lost += want.keys().filter(|f| !per.contains_key(f)).count();
        fig.duplicates += per.values().map(|n| n - 1).sum::<usize>();
    }
    fig.took = started.elapsed();
    fig
}
