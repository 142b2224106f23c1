//! Alerts: routing findings to subscribers (`route.rs`, pure, all that
//! `check` needs), rendering the email (`render.rs`), transports
//! (`transport.rs`) and delivering what the outbox holds (`deliver.rs`:
//! retries, dead letters, digests, the delivery loop). This file holds the
//! error type and the direct sends outside the outbox (test mail, notices).
//!
//! **Architecture Invariant:** decides *who* gets a finding and *how it
//! looks*, never its severity. Deliveries are queued by the store in the
//! same transaction as their finding; this module only drains the queue, so
//! a crash between commit and send loses nothing (at-least-once, with a
//! deterministic Message-ID per finding and subscriber). A delivery leaves
//! the outbox only when the server said `250` (or the `.eml` file is on
//! disk); a permanent failure (5xx) stays in the outbox as a dead letter
//! until `pivotwatch outbox retry` requeues it.

pub mod deliver;
mod render;
pub mod route;
mod transport;

pub use deliver::{
    DIGEST_MAX_FINDINGS, Delivered, DeliveryReport, LOOP_MAX_SLEEP, Outcome, RETRY_FIRST,
    RETRY_MAX, backoff, deliver_due, deliver_pending, deliver_with, delivery_loop,
    delivery_loop_with, next_digest_due, requeue,
};
pub use render::{
    DigestEntry, MAX_SUBJECT, Rendered, digest_message_id, finding_message_id, render,
    render_digest, render_notice, render_test, sanitize_header, subject, text_body,
};
pub use route::{DEFAULT_SUBSCRIBER, route, subscriber};
pub use transport::{SendFailure, SendOk, Transport, classify_smtp_error};

use crate::config::{Config, Watchlist};
use crate::store::StoreError;

/// Validates a mail address (`desk@example.org` or `Desk <desk@example.org>`)
/// with lettre's own parser, the one alert sends with: the
/// [`crate::config::LoadOptions::check_address`] the binary loads with.
pub fn check_address(s: &str) -> Result<(), String> {
    s.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|e| {
        format!(
            "invalid mail address {s:?} ({e}); write e.g. \"desk@example.org\" or \"Desk <desk@example.org>\""
        )
    })
}

/// Test hook: when this environment variable holds a number of
/// milliseconds, `pivotwatch once` sleeps that long after its checks are
/// committed and before it delivers, announcing the pause on stderr. The
/// crash tests kill the process during the pause. Read only in a build with
/// the `test-hooks` feature, never in a release build.
pub const TEST_PAUSE_ENV: &str = "PIVOTWATCH_TEST_PAUSE_BEFORE_DELIVERY";

/// Delivery failures that stop a whole run (a single mail's failure is an
/// [`Outcome`], never an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message could not be built (bad address).
    #[error("cannot build the alert email; fix the address in pivotwatch.toml")]
    Build(#[from] BuildError),
    /// The SMTP password or TLS set-up is not usable. Nothing was sent and
    /// every delivery stays queued.
    #[error("{0}; nothing was sent, every alert stays queued")]
    Credentials(CredentialsError),
    /// `send-test-email` named a subscriber that is not configured.
    #[error("no subscriber {0:?} in pivotwatch.toml; `pivotwatch check` lists the settings in use")]
    UnknownSubscriber(String),
    /// `outbox retry` named a delivery that is not in the outbox.
    #[error(
        "no delivery {0} in the outbox (already sent, or a wrong id); `pivotwatch outbox` lists them"
    )]
    UnknownDelivery(u64),
    /// A direct send (test mail, notice) failed.
    #[error("sending failed")]
    Send(#[source] SendFailure),
}

/// What is wrong with an alert email that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `[email] from` is not a mailbox.
    #[error("[email] from {from:?}")]
    From {
        /// The configured value.
        from: String,
        /// lettre's reason.
        #[source]
        source: lettre::address::AddressError,
    },
    /// A recipient list is empty.
    #[error("{who} has no address in `to`")]
    NoRecipient {
        /// Whose list (`subscriber "desk"`, `watchlist "x" maintainers`).
        who: String,
    },
    /// A recipient is not a mailbox.
    #[error("{who} address {to:?}")]
    To {
        /// Whose list.
        who: String,
        /// The address.
        to: String,
        /// lettre's reason.
        #[source]
        source: lettre::address::AddressError,
    },
    /// A body part cannot be encoded.
    #[error("cannot base64-encode the body")]
    Encoding,
    /// lettre refused the assembled message.
    #[error("the message is not valid")]
    Message(#[source] lettre::error::Error),
}

impl From<CredentialsError> for AlertError {
    fn from(e: CredentialsError) -> Self {
        AlertError::Credentials(e)
    }
}

/// Why the SMTP password or TLS set-up is not usable. Shown inside
/// [`AlertError::Credentials`]'s message (which says what follows from it),
/// so the OS or TLS error, a leaf, is part of this text and not a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// `[smtp] password_file` cannot be read.
    #[error(
        "cannot read [smtp] password_file {}: {error}; check the path and that the pivotwatch user may read it (systemd: LoadCredential=)",
        path.display()
    )]
    ReadPasswordFile {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// `[smtp] password_file` is empty.
    #[error("[smtp] password_file {} is empty; write the password into it", path.display())]
    EmptyPasswordFile {
        /// The file.
        path: std::path::PathBuf,
    },
    /// `[smtp] password_env` names an unset variable.
    #[error(
        "[smtp] password_env names {var}, but that environment variable is not set or empty; set it for the pivotwatch process"
    )]
    PasswordEnv {
        /// The variable.
        var: String,
    },
    /// `[smtp] username` without a password source.
    #[error("[smtp] username is set but neither password_file nor password_env")]
    NoPassword,
    /// TLS cannot be set up for the host.
    #[error("cannot set up TLS for [smtp] host {host:?}: {error}")]
    Tls {
        /// The host.
        host: String,
        /// lettre's reason.
        error: lettre::transport::smtp::Error,
    },
    /// `security = "none"` to a host that is not loopback.
    #[error("security = \"none\" is only allowed to a loopback host, not {host:?}")]
    ClearText {
        /// The host.
        host: String,
    },
}

/// `send-test-email`: sends a test mail to a subscriber right away,
/// outside the outbox. Returns the transport used, the rendered mail and
/// the server's reply.
pub async fn send_test_email(
    config: &Config,
    name: &str,
) -> Result<(String, Rendered, SendOk), AlertError> {
    let settings = &config.settings;
    let sub =
        subscriber(settings, name).ok_or_else(|| AlertError::UnknownSubscriber(name.into()))?;
    let transport = Transport::from_settings(settings)?;
    let mail = render_test(settings, &sub, transport.label())?;
    let ok = transport.send(&mail).await.map_err(AlertError::Send)?;
    Ok((transport.label().to_string(), mail, ok))
}

/// Sends a notice (e.g. "source broken") to a watchlist's maintainers, not
/// to subscribers, right away and outside the outbox: the caller retries
/// on failure. `key` and `installation` (the store's
/// [`crate::store::Store::installation_id`]) make the Message-ID: the same notice from
/// the same store has the same id. `Ok(None)` when the watchlist names no
/// maintainers.
pub async fn send_notice(
    config: &Config,
    installation: &str,
    watchlist: &Watchlist,
    subject: &str,
    text: &str,
    key: &str,
) -> Result<Option<SendOk>, AlertError> {
    if watchlist.maintainers.is_empty() {
        return Ok(None);
    }
    let transport = Transport::from_settings(&config.settings)?;
    let mail = render_notice(
        &config.settings,
        installation,
        &watchlist.maintainers,
        &watchlist.name,
        subject,
        text,
        key,
    )?;
    transport
        .send(&mail)
        .await
        .map(Some)
        .map_err(AlertError::Send)
}

/// The test hook behind [`TEST_PAUSE_ENV`]: sleeps when it is set. Only
/// in a build with the `test-hooks` feature (the crate's tests and benches
/// enable it through a dev-dependency on the crate itself); otherwise it
/// does nothing and the variable is ignored.
pub async fn test_pause_before_delivery() {
    #[cfg(feature = "test-hooks")]
    {
        let Ok(v) = std::env::var(TEST_PAUSE_ENV) else {
            return;
        };
        let Ok(ms) = v.trim().parse::<u64>() else {
            return;
        };
        eprintln!("pivotwatch: {TEST_PAUSE_ENV}: committed; pausing {ms} ms before delivery");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}
