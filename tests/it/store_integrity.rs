//! The store fails closed and loudly: a full disk (a real, small tmpfs)
//! makes `once` fail within seconds with an error naming the state
//! folder, and the daemon keep running, tell the maintainers, retry and
//! deliver the queued alerts once space is back; a damaged store (real
//! sled files, damaged as a disk or a person would) is refused with a
//! message saying what happened and what to do, or rebuilt when its data
//! is intact; never used empty, never with sled's debug text.
//!
//! The tmpfs tests need root (`mount -t tmpfs`); they fail, never skip,
//! when the mount is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::{BIN, Daemon, WAIT};
use crate::support::{CATALOGUE_WATCHLIST, catalogue_page};
use pivotwatch::app::demo::{Page, Site};
use pivotwatch::store::Store;

const PIVOT: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"),
    ("FPGA", "AMD Xilinx", "XC7A35T-1CPG236C", "95"),
];

const MORE: (&str, &str, &str, &str) = (
    "Microcontroller",
    "STMicroelectronics",
    "STM32F407VGT6",
    "12",
);

/// A small tmpfs mounted on a temp folder; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} ({}): these tests need root to make a real full disk; run them as root (CI does)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        for chunk in [1 << 16, 512, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("remove filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A config folder (settings, watchlist, spool) on the normal disk, with
/// the state folder where the test wants it.
struct Setup {
    dir: tempfile::TempDir,
    state: PathBuf,
    site: Site,
}

impl Setup {
    async fn new(state: Option<PathBuf>, write_timeout: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site::start().await.expect("site");
        site.set("/shop", Page::html(catalogue_page(PIVOT, "1", None)));
        let state = state.unwrap_or_else(|| dir.path().join("state"));
        let settings = format!(
            r#"[store]
path = "{state}"
write_timeout = "{write_timeout}"
[http]
allow_private_addresses = true
timeout = "5s"
robots_txt = false
[email]
from = "pivotwatch <alerts@pivotwatch.test>"
spool_dir = "{spool}"
[[subscriber]]
name = "desk"
to = ["desk@watchdog.test"]
min_severity = "info"
[daemon]
jitter = "0s"
grace_period = "5s"
"#,
            state = state.display(),
            spool = dir.path().join("spool").display(),
        );
        std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
        std::fs::write(dir.path().join("pivotwatch.toml"), settings).unwrap();
        std::fs::write(
            dir.path().join("watchlists/test.toml"),
            CATALOGUE_WATCHLIST.replace("{BASE}", &site.base()),
        )
        .unwrap();
        Setup { dir, state, site }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.dir
                .path()
                .join("pivotwatch.toml")
                .display()
                .to_string(),
            "--watchlists".into(),
            self.dir.path().join("watchlists").display().to_string(),
        ]
    }

    /// Runs a command to completion, failing the test if it takes longer
    /// than `within` (a hang).
    fn cli(&self, args: &[&str], within: Duration) -> (Output, Duration) {
        let t = Instant::now();
        let mut child = Command::new(BIN)
            .args(self.args())
            .args(args)
            .env("RUST_LOG", "pivotwatch=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pivotwatch");
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if t.elapsed() > within {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "pivotwatch {args:?} did not end within {within:?} (hung); stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        (out, t.elapsed())
    }

    fn once(&self, args: &[&str]) -> Output {
        let mut a = vec!["once"];
        a.extend_from_slice(args);
        self.cli(&a, WAIT).0
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn mails_containing(&self, needle: &str) -> usize {
        std::fs::read_dir(self.spool())
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

    fn store(&self) -> Store {
        Store::open(&self.state).expect("store")
    }

    fn db(&self) -> PathBuf {
        self.state.join("db")
    }
}

/// Lets sled release the lock of a store this process just closed, before
/// a child process opens it.
fn settle() {
    std::thread::sleep(Duration::from_secs(1));
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No sled debug text reaches users.
fn assert_no_sled_text(out: &str) {
    for bad in ["backtrace", "Corruption {", "Custom {", "Os {", "kind:"] {
        assert!(!out.contains(bad), "sled's debug text {bad:?} in:\n{out}");
    }
}

/// sled's snapshot files in a database folder.
fn snapshots(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(db)
        .expect("db folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
        })
        .collect();
    v.sort();
    v
}

/// Overwrites the first 16 bytes of sled's data file.
fn flip_db_header(db: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(db.join("db"))
        .expect("db file");
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(4)).unwrap();
    f.sync_all().unwrap();
}

/// A store with committed findings whose deliveries were sent, made by a
/// real `once` run, with its sled snapshot file.
async fn store_with_findings() -> (Setup, Vec<u64>) {
    let s = Setup::new(None, "10s").await;
    let out = s.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // sled writes its snapshot file when it opens a store it recovers
    // (the store opens twice at start); a read command opens it again.
    for _ in 0..3 {
        if !snapshots(&s.db()).is_empty() {
            break;
        }
        let (out, _) = s.cli(&["findings"], WAIT);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(!snapshots(&s.db()).is_empty(), "no sled snapshot file");
    let ids: Vec<u64> = s.store().findings().unwrap().iter().map(|f| f.id).collect();
    assert!(!ids.is_empty(), "the page gave no findings");
    settle();
    (s, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_once_fails_within_seconds_naming_the_state_folder_and_loses_nothing() {
    let fs = Tmpfs::mount("8m");
    let s = Setup::new(Some(fs.path().join("state")), "3s").await;
    // Alerts committed and queued, not yet delivered.
    let out = s.once(&["--no-deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (queued, findings) = {
        let store = s.store();
        (
            store.pending_deliveries().unwrap(),
            store.findings().unwrap(),
        )
    };
    assert!(!queued.is_empty());
    settle();

    // The disk fills; the page changes (one more finding to commit).
    fs.fill();
    let mut rows = PIVOT.to_vec();
    rows.push(MORE);
    s.site
        .set("/shop", Page::html(catalogue_page(&rows, "2", None)));
    let (out, took) = s.cli(&["once"], Duration::from_secs(60));
    let all = text(&out);
    assert_ne!(
        out.status.code(),
        Some(0),
        "once exited 0 on a full disk:\n{all}"
    );
    assert!(
        took < Duration::from_secs(30),
        "once took {took:?} on a full disk"
    );
    assert!(
        all.contains(&s.state.display().to_string()) && all.contains("is full"),
        "the error does not name the state folder and the full disk:\n{all}"
    );
    assert_no_sled_text(&all);
    assert_eq!(
        s.mails_containing("desk@watchdog.test"),
        0,
        "mailed on a full disk"
    );

    // Space is back: the queued alerts go out, the new finding is
    // committed and sent, nothing committed before is lost.
    fs.free();
    let out = s.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let store = s.store();
    let after = store.findings().unwrap();
    for f in &findings {
        assert!(
            after
                .iter()
                .any(|a| a.id == f.id && a.dedup_key == f.dedup_key),
            "finding {} was lost",
            f.id
        );
    }
    assert!(
        after.iter().any(|f| f.summary.contains("STM32F407VGT6")),
        "the finding of the retried check is missing: {:?}",
        after.iter().map(|f| &f.summary).collect::<Vec<_>>()
    );
    assert!(store.pending_deliveries().unwrap().is_empty());
    let sent = store.sent_deliveries().unwrap();
    for d in &queued {
        assert!(
            sent.iter().any(|x| x.id == d.id),
            "queued delivery {} never went out",
            d.id
        );
    }
    assert!(s.mails_containing("desk@watchdog.test") >= queued.len());
}

impl Daemon {
    fn start_setup(s: &Setup) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(s.args()).arg("run");
        Daemon::spawn(cmd, s.dir.path().join("daemon.log"), &[])
    }
}

async fn until(what: &str, within: Duration, d: &mut Daemon, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            d.running(),
            "the daemon exited while waiting for {what}:\n{}",
            d.log()
        );
        assert!(
            t.elapsed() < within,
            "timed out waiting for {what}; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_on_a_full_disk_keeps_running_tells_the_maintainers_and_delivers_once_space_is_back()
{
    let fs = Tmpfs::mount("8m");
    let s = Setup::new(Some(fs.path().join("state")), "3s").await;
    let out = s.once(&["--no-deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let queued = s.store().pending_deliveries().unwrap();
    assert!(!queued.is_empty());
    settle();

    fs.fill();
    let mut d = Daemon::start_setup(&s);
    until("the store notice to the maintainers", WAIT, &mut d, || {
        s.mails_containing("pivotwatch: the store cannot write") == 1
    })
    .await;
    assert_eq!(s.mails_containing("analyst@example.org"), 1);
    assert_eq!(
        s.mails_containing("desk@watchdog.test"),
        0,
        "an alert went out although its delivery could not be recorded"
    );
    let notice = std::fs::read_dir(s.spool())
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
        .find(|t| String::from_utf8_lossy(t).contains("the store cannot write"))
        .unwrap();
    let notice = mail_parser::MessageParser::default()
        .parse(&notice)
        .expect("notice parses as mail");
    let body = notice.body_text(0).expect("text part").to_string();
    assert!(
        body.contains(&s.state.display().to_string()) && body.contains("is full"),
        "the notice does not say which store and why:\n{body}"
    );
    // Still running a few retries later.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        d.running(),
        "the daemon stopped on a full disk:\n{}",
        d.log()
    );

    fs.free();
    until("the queued alerts", Duration::from_secs(60), &mut d, || {
        s.mails_containing("desk@watchdog.test") >= queued.len()
    })
    .await;
    until("the recovery notice", WAIT, &mut d, || {
        s.mails_containing("pivotwatch: the store works again") == 1
    })
    .await;
    assert_eq!(d.stop().await.code(), Some(0), "{}", d.log());
    let log = d.log();
    assert_no_sled_text(&log);
    let store = s.store();
    assert!(store.pending_deliveries().unwrap().is_empty());
    let sent = store.sent_deliveries().unwrap();
    for q in &queued {
        assert!(sent.iter().any(|x| x.id == q.id), "delivery {} lost", q.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_db_header_is_refused_before_anything_is_mailed() {
    let (s, ids) = store_with_findings().await;
    let mails = s.mails_containing("desk@watchdog.test");
    flip_db_header(&s.db());
    // A new finding after the damage: it is either stored and mailed, or
    // refused loudly; never mailed while nothing is stored.
    let mut rows = PIVOT.to_vec();
    rows.push(MORE);
    s.site
        .set("/shop", Page::html(catalogue_page(&rows, "2", None)));
    let first = s.once(&[]);
    let all = text(&first);
    assert_ne!(first.status.code(), Some(0), "{all}");
    assert!(
        all.contains("is behind its integrity marker")
            && all.contains("store.marker")
            && all.contains("backup"),
        "{all}"
    );
    assert_no_sled_text(&all);
    assert_eq!(
        s.mails_containing("desk@watchdog.test"),
        mails,
        "mailed from a store that does not keep what it writes"
    );
    // Refused every time, not only once; the findings it had are not
    // reused under new ids.
    let again = s.once(&[]);
    assert_ne!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(s.mails_containing("desk@watchdog.test"), mails);
    assert!(!ids.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_snapshot_and_damaged_db_is_refused_and_old_findings_are_not_alerted_again() {
    let (s, _) = store_with_findings().await;
    let mails = s.mails_containing("desk@watchdog.test");
    for f in snapshots(&s.db()) {
        std::fs::remove_file(f).unwrap();
    }
    flip_db_header(&s.db());
    let out = s.once(&[]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("opened empty") && all.contains("backup"),
        "{all}"
    );
    assert_no_sled_text(&all);
    assert_eq!(
        s.mails_containing("desk@watchdog.test"),
        mails,
        "old findings alerted again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_snapshot_with_intact_data_is_rebuilt_and_nothing_is_lost() {
    let (s, ids) = store_with_findings().await;
    let mails = s.mails_containing("desk@watchdog.test");
    let snap = snapshots(&s.db()).pop().unwrap();
    let len = std::fs::metadata(&snap).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = s.once(&[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("rebuilt"), "no word of the rebuild:\n{all}");
    assert_no_sled_text(&all);
    // Same findings, nothing alerted again, the damaged copy kept aside.
    let after: Vec<u64> = s.store().findings().unwrap().iter().map(|f| f.id).collect();
    assert_eq!(after, ids);
    assert_eq!(s.mails_containing("desk@watchdog.test"), mails);
    let kept = std::fs::read_dir(&s.state)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("db.damaged-"));
    assert!(kept, "the damaged database was not kept aside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_snapshot_whose_data_does_not_rebuild_names_the_file_and_changes_nothing() {
    let (s, _) = store_with_findings().await;
    let snap = snapshots(&s.db()).pop().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(20)
        .unwrap();
    flip_db_header(&s.db());
    let before = std::fs::read(s.db().join("db")).unwrap();
    let out = s.once(&[]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&snap.display().to_string()) && all.contains("backup"),
        "the error does not name the snapshot file and what to do:\n{all}"
    );
    assert_no_sled_text(&all);
    assert_eq!(
        std::fs::read(s.db().join("db")).unwrap(),
        before,
        "the db was changed"
    );
    assert!(snap.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_behind_its_marker_is_refused_with_how_to_restore() {
    let s = Setup::new(None, "10s").await;
    let out = s.once(&["--no-deliver"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // An older copy of the database (as a stale backup would be).
    let old = s.dir.path().join("db.old");
    copy_dir(&s.db(), &old);
    let out = s.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir_all(s.db()).unwrap();
    std::fs::rename(&old, s.db()).unwrap();
    let out = s.once(&[]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("is behind its integrity marker")
            && all.contains("store.marker")
            && all.contains("Restore the latest backup"),
        "{all}"
    );
    assert_no_sled_text(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_anew_while_its_marker_exists_is_refused() {
    let s = Setup::new(None, "10s").await;
    let out = s.once(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mails = s.mails_containing("desk@watchdog.test");
    std::fs::remove_dir_all(s.db()).unwrap();
    let out = s.once(&[]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("opened empty") && all.contains("store.marker"),
        "{all}"
    );
    assert_eq!(
        s.mails_containing("desk@watchdog.test"),
        mails,
        "re-alerted"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
