//! The `pivotwatch` binary as a child process: one-shot commands and the
//! `pivotwatch run` daemon (tests/it/cli.rs, edges.rs, daemon.rs,
//! store_integrity.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_pivotwatch");

/// How long a test waits for a daemon to stop.
pub const WAIT: Duration = Duration::from_secs(30);

/// Runs pivotwatch in `dir` with logging off.
pub fn pivotwatch(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run pivotwatch")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `path:line:col` of the first occurrence of `needle` in `text`.
pub fn at(path: impl AsRef<Path>, text: &str, needle: &str) -> String {
    let off = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let line = text[..off].matches('\n').count() + 1;
    let col = off - text[..off].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{}:{line}:{col}", path.as_ref().display())
}

/// A `pivotwatch run` child process; killed if the test ends early.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` (the binary with its arguments) with info logs to
    /// `log`, no colour, no systemd sockets unless `env` sets them.
    pub fn spawn(mut cmd: Command, log: PathBuf, env: &[(&str, &str)]) -> Daemon {
        cmd.env("RUST_LOG", "pivotwatch=info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().expect("spawn pivotwatch run"),
            log,
        }
    }
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("send signal");
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                t.elapsed() < within,
                "daemon did not exit within {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.exit(WAIT).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
