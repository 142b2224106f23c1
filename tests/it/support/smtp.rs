//! A minimal SMTP server on 127.0.0.1 for the crash-delivery loop
//! (tests/it/crash_delivery.rs, benches/crash_delivery.rs): the `mailin` SMTP
//! state machine (parser, command sequencing, dot-unstuffing) behind a
//! tokio TCP listener. It accepts everything and records each message at
//! its final `.`, before it answers `250`. (tests/it/delivery.rs has the full
//! server with fault injection.)

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the server accepted it.
#[derive(Debug, Clone)]
pub struct Received {
    /// RCPT TO addresses.
    pub rcpt: Vec<String>,
    /// The message, dot-unstuffed.
    pub data: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

struct Conn {
    inbox: Inbox,
    rcpt: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Conn {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.rcpt = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Received {
                rcpt: std::mem::take(&mut self.rcpt),
                data: std::mem::take(&mut self.data),
            });
        mailin::response::OK
    }
}

async fn serve(stream: TcpStream, inbox: Inbox) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut session = SessionBuilder::new("mx.test").build(
        peer,
        Conn {
            inbox,
            rcpt: vec![],
            data: vec![],
        },
    );
    let bytes = |res: &Response| res.buffer().unwrap_or_default();
    if w.write_all(&bytes(&session.greeting())).await.is_err() {
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
        match res.action {
            Action::Reply => {
                if w.write_all(&bytes(&res)).await.is_err() {
                    return;
                }
            }
            Action::Close => {
                let _ = w.write_all(&bytes(&res)).await;
                return;
            }
            Action::NoReply => {}
            Action::UpgradeTls => return,
        }
    }
}

/// The running server.
pub struct SmtpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    inbox: Inbox,
    accept: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on a free loopback port.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the SMTP test server");
        let addr = listener.local_addr().expect("local addr");
        let inbox: Inbox = Arc::default();
        let i = inbox.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, i.clone()));
            }
        });
        SmtpServer {
            addr,
            inbox,
            accept,
        }
    }

    /// Takes every message received so far.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
