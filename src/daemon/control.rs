//! The local control channel: a Unix socket, `control.sock` in the state
//! folder, through which `history`, `diff`, `findings`, `explain`,
//! `outbox`, `evidence`, `export`, `gc` and `backup` run inside the daemon
//! while it holds the store (sled allows one process per database). Files
//! they write (`--out`, the backup) are written by the daemon at the
//! absolute path the client sent; raw bytes on standard output do not
//! pass (the answer is text), so those commands then need `--out`.
//!
//! Protocol: the client sends one JSON line, a [`Request`]; the daemon
//! runs the command against its store and its running configuration and
//! answers with one JSON line, a [`Response`] (the command's standard
//! output and exit code), then closes. The socket is created mode 0600:
//! who may read the store may ask.
//!
//! **Boundary:** local socket only; commands are run by
//! [`crate::read::run`], as the command line runs them.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub use crate::read::ReadCommand;

use super::Shared;

/// The socket's file name in the state folder.
pub const SOCKET_NAME: &str = "control.sock";
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// Longest answer read by the client.
const MAX_RESPONSE: u64 = 256 * 1024 * 1024;
/// How long the client waits to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits for the answer (`explain` on a large entity,
/// `outbox retry` sending mail).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The socket path for a state folder.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// What the client sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version, 1.
    pub version: u32,
    /// The command.
    #[serde(flatten)]
    pub command: ReadCommand,
}

/// What the daemon answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// The command's exit code.
    pub exit: u8,
    /// Its standard output.
    pub stdout: String,
    /// Its error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Control channel failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Nothing listens on the socket.
    #[error(
        "cannot reach the running daemon through {path} (if no `pivotwatch run` uses this state folder, another process holds the store)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The daemon did not answer in time or broke the connection.
    #[error("the daemon did not answer on {path}: {detail}; see its log")]
    Answer {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Sends one command to the daemon that holds the store of `state_dir`.
pub async fn request(state_dir: &Path, command: ReadCommand) -> Result<Response, ControlError> {
    let path = socket_path(state_dir);
    let connect_err = |source| ControlError::Connect {
        path: path.clone(),
        source,
    };
    let answer_err = |detail: String| ControlError::Answer {
        path: path.clone(),
        detail,
    };
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&path)).await {
        Ok(r) => r.map_err(connect_err)?,
        Err(_) => {
            return Err(connect_err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            )));
        }
    };
    let mut line = serde_json::to_vec(&Request {
        version: 1,
        command,
    })
    .map_err(|e| answer_err(crate::text::chain(&e)))?;
    line.push(b'\n');
    let exchange = async {
        stream.write_all(&line).await?;
        stream.shutdown().await?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut buf)
            .await?;
        Ok::<_, io::Error>(buf)
    };
    let buf = match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
        Ok(r) => r.map_err(|e| answer_err(crate::text::chain(&e)))?,
        Err(_) => return Err(answer_err(format!("no answer within {ANSWER_TIMEOUT:?}"))),
    };
    serde_json::from_slice(&buf).map_err(|e| answer_err(format!("unreadable answer ({e})")))
}

/// Binds the socket (replacing a stale one: the caller holds the store, so
/// no other daemon can be using it) with mode 0600.
pub(crate) fn bind(state_dir: &Path) -> io::Result<(UnixListener, PathBuf)> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, path))
}

/// Serves the socket until `shutdown` completes.
pub(crate) async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, shared).await {
                            tracing::warn!(error = %crate::text::chain(&e), "Control request failed.");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %crate::text::chain(&e), "Control socket accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn handle(stream: UnixStream, shared: Arc<Shared>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let mut line = String::new();
    match tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await {
        Ok(r) => {
            r?;
        }
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request")),
    }
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) if req.version == 1 => run(req.command, shared).await,
        Ok(req) => Response {
            exit: 1,
            error: Some(format!(
                "control protocol version {} is not supported by this daemon (1); use the same pivotwatch binary",
                req.version
            )),
            ..Response::default()
        },
        Err(e) => Response {
            exit: 2,
            error: Some(format!("unreadable control request: {e}")),
            ..Response::default()
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

async fn run(command: ReadCommand, shared: Arc<Shared>) -> Response {
    let config = shared.config();
    let store = shared.store.clone();
    tracing::info!(?command, "Control request.");
    if command.writes_raw_stdout() {
        return Response {
            exit: crate::read::EXIT_USAGE,
            error: Some(
                "`pivotwatch run` holds the store and raw bytes do not pass through its control socket: give --out FILE"
                    .into(),
            ),
            ..Response::default()
        };
    }
    let mut out = Vec::new();
    let result = crate::read::run(config, store, command, &mut out).await;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    match result {
        Ok(exit) => Response {
            exit,
            stdout,
            error: None,
        },
        Err(e) => Response {
            exit: e.exit_code(),
            stdout,
            error: Some(crate::text::chain(&e)),
        },
    }
}
