//! Where mail goes: SMTP (lettre, tokio) or `.eml` files in the spool
//! folder; and what a failure means (retry or give up).

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_io::{AsyncRead as _, AsyncWrite as _};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use super::render::Rendered;
use super::{AlertError, CredentialsError};
use crate::config::{Settings, SmtpSecurity, SmtpSettings};

/// What one send achieved.
#[derive(Debug, Clone)]
pub struct SendOk {
    /// The server's final reply (`250 …`) or the spool file written.
    pub reply: String,
    /// The `.eml` file, for the spool transport.
    pub file: Option<PathBuf>,
}

/// Why one send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// A 4xx reply, a refused or dropped connection, a timeout, a TLS or
    /// login problem, a full disk: try again later.
    Transient {
        /// What happened.
        error: String,
        /// True when the server was never reached or the connection broke
        /// (not a reply about this mail): later mails to the same
        /// subscriber would fail the same way, so they are deferred.
        connection: bool,
    },
    /// A 5xx reply about this mail (e.g. `550 mailbox unavailable`):
    /// sending it again cannot succeed.
    Permanent {
        /// The reply.
        error: String,
    },
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.error())
    }
}

impl std::error::Error for SendFailure {}

impl SendFailure {
    /// The error text.
    pub fn error(&self) -> &str {
        match self {
            SendFailure::Transient { error, .. } | SendFailure::Permanent { error } => error,
        }
    }
}

/// Maps a lettre SMTP error to retry-or-give-up. 5xx replies are permanent,
/// except authentication failures (530, 534, 535, 538): those are the
/// operator's to fix and say nothing about the mail, so it stays queued.
pub fn classify_smtp_error(e: &lettre::transport::smtp::Error) -> SendFailure {
    let error = crate::text::chain(e);
    if let Some(code) = e.status() {
        let n = code.to_string();
        if e.is_permanent() && !matches!(n.as_str(), "530" | "534" | "535" | "538") {
            return SendFailure::Permanent { error };
        }
        return SendFailure::Transient {
            error,
            connection: false,
        };
    }
    // No reply code: the connection was refused, dropped, timed out, or
    // TLS/STARTTLS failed.
    let hint = if error.contains("STARTTLS") {
        "; the server does not offer STARTTLS: fix the relay, or use security = \"tls\" (port 465)"
    } else if e.is_tls() {
        "; TLS failed: check the relay's certificate and that [smtp] host is the name on it"
    } else {
        ""
    };
    SendFailure::Transient {
        error: format!("{error}{hint}"),
        connection: true,
    }
}

enum Kind {
    Spool(PathBuf),
    Smtp(Box<Smtp>),
}

/// Most idle SMTP connections kept for reuse.
const POOL_MAX: usize = 4;
/// An idle SMTP connection older than this is closed, not reused.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// SMTP through connections pivotwatch opens itself, so that every socket
/// has `TCP_NODELAY`: lettre's own transport connects inside a sealed
/// executor and never sets it, and its client writes the message and the
/// final `\r\n.\r\n` separately, so Nagle's algorithm held that last
/// small segment until the peer's delayed ACK (~40 ms on Linux) — a window
/// in which a crash leaves the mail delivered but not marked sent, and so
/// a duplicate. lettre still speaks the protocol ([`AsyncSmtpConnection`]:
/// EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, dot-stuffing) and does TLS.
struct Smtp {
    host: String,
    port: u16,
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Smtp {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A pooled connection that still answers NOOP, else a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SendFailure> {
        loop {
            let parked = self.lock_idle().pop();
            let Some((mut conn, since)) = parked else {
                break;
            };
            if since.elapsed() < POOL_IDLE && !conn.has_broken() && conn.test_connected().await {
                return Ok(conn);
            }
        }
        self.connect().await
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.lock_idle();
        if idle.len() < POOL_MAX {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendFailure> {
        let tcp = tcp_connect(&self.host, self.port, self.timeout).await?;
        let mut conn = match (&self.security, &self.tls) {
            (SmtpSecurity::Tls, Some(params)) => {
                #[allow(deprecated)] // the only way to TLS-wrap our own socket
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                stream
                    .upgrade_tls(params.clone())
                    .await
                    .map_err(|e| classify_smtp_error(&e))?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(TlsStream(stream)),
                    &self.hello,
                )
                .await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(|e| classify_smtp_error(&e))?;
        if let (SmtpSecurity::Starttls, Some(params)) = (&self.security, &self.tls) {
            // Required: a server without STARTTLS gets nothing.
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(|e| classify_smtp_error(&e))?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c)
                .await
                .map_err(|e| classify_smtp_error(&e))?;
        }
        Ok(conn)
    }

    async fn send(&self, mail: &Rendered) -> Result<SendOk, SendFailure> {
        let envelope = mail.message.envelope().clone();
        let bytes = mail.message.formatted();
        let mut conn = self.connection().await?;
        match conn.send(&envelope, &bytes).await {
            Ok(resp) => {
                self.park(conn);
                let text: Vec<&str> = resp.message().collect();
                Ok(SendOk {
                    reply: format!("{} {}", resp.code(), text.join(" ")),
                    file: None,
                })
            }
            // lettre has already closed the connection on an error.
            Err(e) => Err(classify_smtp_error(&e)),
        }
    }
}

/// Connects to `host:port` (each resolved address in turn, each bounded
/// by `timeout`) with `TCP_NODELAY` set.
pub(crate) async fn tcp_connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, SendFailure> {
    let fail = |what: String| SendFailure::Transient {
        error: format!("cannot connect to the SMTP server {host}:{port}: {what}"),
        connection: true,
    };
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(fail(crate::text::chain(&e))),
        Err(_) => return Err(fail("name lookup timed out".into())),
    };
    let mut last = String::from("the name resolves to no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true)
                    .map_err(|e| fail(format!("cannot set TCP_NODELAY: {e}")))?;
                return Ok(tcp);
            }
            Ok(Err(e)) => last = format!("{addr}: {}", crate::text::chain(&e)),
            Err(_) => last = format!("{addr}: connection timed out"),
        }
    }
    Err(fail(last))
}

/// lettre's TLS stream (over our socket) seen through the tokio I/O traits
/// that [`AsyncSmtpConnection::connect_with_transport`] takes.
#[allow(deprecated)]
#[derive(Debug)]
struct TlsStream(AsyncNetworkStream);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let dst = buf.initialize_unfilled();
        match Pin::new(&mut self.0).poll_read(cx, dst) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

/// A transport built from the settings. Build it once per delivery run
/// and reuse it: SMTP connections are pooled.
pub struct Transport {
    kind: Kind,
    label: String,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints the credentials lettre holds.
        f.debug_struct("Transport")
            .field("label", &self.label)
            .finish()
    }
}

/// Reads the SMTP password from `password_file` or `password_env`.
/// The value never appears in an error or a log line.
fn password(smtp: &SmtpSettings) -> Result<Option<String>, AlertError> {
    if let Some(path) = &smtp.password_file {
        let text =
            std::fs::read_to_string(path).map_err(|error| CredentialsError::ReadPasswordFile {
                path: path.clone(),
                error,
            })?;
        let pw = text.trim_end_matches(['\r', '\n']).to_string();
        if pw.is_empty() {
            return Err(CredentialsError::EmptyPasswordFile { path: path.clone() }.into());
        }
        return Ok(Some(pw));
    }
    if let Some(var) = &smtp.password_env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(CredentialsError::PasswordEnv { var: var.clone() }.into()),
        };
    }
    Ok(None)
}

impl Transport {
    /// SMTP when `[smtp]` is set, else the spool folder. Fails (before any
    /// delivery is touched) when the password cannot be read.
    pub fn from_settings(settings: &Settings) -> Result<Transport, AlertError> {
        let Some(smtp) = &settings.smtp else {
            let dir = settings.email.spool_dir.clone();
            return Ok(Transport {
                label: format!("spool folder {}", dir.display()),
                kind: Kind::Spool(dir),
            });
        };
        let tls_params = || {
            TlsParameters::new(smtp.host.clone()).map_err(|error| CredentialsError::Tls {
                host: smtp.host.clone(),
                error,
            })
        };
        let (tls, sec) = match smtp.security {
            SmtpSecurity::Starttls => (Some(tls_params()?), "starttls"),
            SmtpSecurity::Tls => (Some(tls_params()?), "tls"),
            SmtpSecurity::None => {
                // Settings refuse a non-loopback host already; checked again
                // here so no code path can send in clear over the network.
                if !crate::config::settings::is_loopback_host(&smtp.host) {
                    return Err(CredentialsError::ClearText {
                        host: smtp.host.clone(),
                    }
                    .into());
                }
                (None, "none")
            }
        };
        let credentials = match &smtp.username {
            Some(user) => {
                let pw = password(smtp)?.ok_or(CredentialsError::NoPassword)?;
                Some(Credentials::new(user.clone(), pw))
            }
            None => None,
        };
        Ok(Transport {
            label: format!("SMTP {}:{} ({sec})", smtp.host, smtp.port),
            kind: Kind::Smtp(Box::new(Smtp {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security,
                tls,
                credentials,
                hello: ClientId::default(),
                timeout: smtp.timeout,
                idle: std::sync::Mutex::new(Vec::new()),
            })),
        })
    }

    /// "SMTP host:port (starttls)" or "spool folder DIR".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sends one rendered mail.
    pub async fn send(&self, mail: &Rendered) -> Result<SendOk, SendFailure> {
        match &self.kind {
            Kind::Spool(dir) => write_spool(dir, mail).await,
            Kind::Smtp(smtp) => {
                // The whole exchange is bounded, so a stalled server cannot
                // hold a delivery.
                let timeout = &smtp.timeout;
                match tokio::time::timeout(*timeout, smtp.send(mail)).await {
                    Ok(r) => r,
                    Err(_) => Err(SendFailure::Transient {
                        error: format!(
                            "no answer from the SMTP server within {} ([smtp] timeout); the mail may have arrived and is sent again with the same Message-ID",
                            humantime::format_duration(*timeout)
                        ),
                        connection: true,
                    }),
                }
            }
        }
    }
}

/// Most `.eml` names tried for one mail (`<stem>.eml`, `<stem>.2.eml` …)
/// before the delivery fails.
const SPOOL_NAMES: u32 = 100;

/// Writes the mail into the spool folder as `<stem>.eml` (the stem derives
/// from the Message-ID) without ever replacing a file: the bytes go to a
/// temporary file (fsync), which is then hard-linked to its name, an atomic
/// create-if-absent (the folder is fsynced after). When the name is taken:
/// by the same mail (a resend after a crash, which differs only in its Date
/// and MIME boundary), the delivery is already done; by another mail, the
/// next free name `<stem>.N.eml` is used, so no mail ever overwrites another.
async fn write_spool(dir: &Path, mail: &Rendered) -> Result<SendOk, SendFailure> {
    let dir = dir.to_path_buf();
    let stem = mail.file_stem();
    let bytes = mail.message.formatted();
    let res = tokio::task::spawn_blocking(move || spool_into(&dir, &stem, &bytes)).await;
    match res {
        Ok(Ok(Spooled::Written(path))) => Ok(SendOk {
            reply: format!("written to {}", path.display()),
            file: Some(path),
        }),
        Ok(Ok(Spooled::Already(path))) => Ok(SendOk {
            reply: format!(
                "already in the spool folder as {} (an earlier attempt wrote it)",
                path.display()
            ),
            file: Some(path),
        }),
        Ok(Err(e)) => Err(SendFailure::Transient {
            error: format!(
                "cannot write to the spool folder: {e}; check that it exists, is writable and the disk is not full"
            ),
            connection: true,
        }),
        Err(e) => Err(SendFailure::Transient {
            error: format!("spool writer stopped: {e}"),
            connection: true,
        }),
    }
}

/// Where [`spool_into`] put a mail.
#[derive(Debug, PartialEq)]
enum Spooled {
    /// A new file.
    Written(PathBuf),
    /// The same mail was already there.
    Already(PathBuf),
}

fn spool_into(dir: &Path, stem: &str, bytes: &[u8]) -> std::io::Result<Spooled> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{stem}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        {
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        for n in 1..=SPOOL_NAMES {
            let path = if n == 1 {
                dir.join(format!("{stem}.eml"))
            } else {
                dir.join(format!("{stem}.{n}.eml"))
            };
            let placed = match std::fs::hard_link(&tmp, &path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
                // A file system without hard links: create-if-absent
                // directly (not atomic against a crash mid-write; a torn
                // file is another mail, so a resend takes the next name).
                Err(_) => std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|mut f| {
                        f.write_all(bytes)?;
                        f.sync_all()
                    }),
            };
            match placed {
                Ok(()) => {
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                    return Ok(Spooled::Written(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if std::fs::read(&path).is_ok_and(|old| same_mail(&old, bytes)) {
                        return Ok(Spooled::Already(path));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "{SPOOL_NAMES} files named {stem}[.N].eml already hold other mails; move them away"
        )))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Whether two formatted messages are the same mail: equal bytes once the
/// `Date:` header is dropped and each MIME boundary (random per rendering)
/// is replaced by a placeholder.
fn same_mail(a: &[u8], b: &[u8]) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut kept: Vec<&str> = Vec::new();
    let mut in_date = false;
    for line in head.split("\r\n") {
        let folded = line.starts_with([' ', '\t']);
        if !folded {
            in_date = line
                .get(..5)
                .is_some_and(|k| k.eq_ignore_ascii_case("date:"));
        }
        if !in_date {
            kept.push(line);
        }
    }
    let mut out = format!("{}\r\n\r\n{body}", kept.join("\r\n"));
    let mut boundaries = Vec::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("boundary=\"") {
        rest = &rest[i + 10..];
        let end = rest.find('"').unwrap_or(rest.len());
        if end > 0 {
            boundaries.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    for b in boundaries {
        out = out.replace(&b, "BOUNDARY");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(date: &str, boundary: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@b.test\r\nDate: {date}\r\n  (folded)\r\nMessage-ID: <x@b.test>\r\nContent-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n\r\n{body}\r\n--{boundary}--\r\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn smtp_sockets_have_tcp_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tcp = tcp_connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .expect("connect");
        assert!(tcp.nodelay().expect("getsockopt"), "TCP_NODELAY is set");
        drop(listener);
        let refused = tcp_connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .expect_err("nobody listens");
        assert!(
            matches!(&refused, SendFailure::Transient { connection: true, error }
                if error.contains(&format!("127.0.0.1:{port}")) && error.to_lowercase().contains("refused")),
            "{refused:?}"
        );
    }

    #[test]
    fn same_mail_ignores_date_and_boundary_only() {
        let a = mail("Mon, 1 Dec 2026 10:00:00 +0000", "AAAA", "aGVsbG8=");
        let b = mail("Tue, 2 Dec 2026 11:00:00 +0000", "BBBB", "aGVsbG8=");
        let c = mail("Mon, 1 Dec 2026 10:00:00 +0000", "AAAA", "d29ybGQ=");
        assert!(same_mail(&a, &b));
        assert!(!same_mail(&a, &c));
    }

    #[test]
    fn spool_never_replaces_another_mail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = mail("Mon, 1 Dec 2026 10:00:00 +0000", "AAAA", "aGVsbG8=");
        let a2 = mail("Tue, 2 Dec 2026 11:00:00 +0000", "BBBB", "aGVsbG8=");
        let other = mail("Mon, 1 Dec 2026 10:00:00 +0000", "AAAA", "d29ybGQ=");
        let first = dir.path().join("x.eml");
        assert_eq!(
            spool_into(dir.path(), "x", &a).expect("write"),
            Spooled::Written(first.clone())
        );
        assert_eq!(
            spool_into(dir.path(), "x", &a2).expect("resend"),
            Spooled::Already(first.clone())
        );
        assert_eq!(
            spool_into(dir.path(), "x", &other).expect("other"),
            Spooled::Written(dir.path().join("x.2.eml"))
        );
        assert_eq!(std::fs::read(&first).expect("first"), a);
        assert_eq!(
            std::fs::read(dir.path().join("x.2.eml")).expect("second"),
            other
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["x.2.eml", "x.eml"], "no temporary file left");
    }
}
