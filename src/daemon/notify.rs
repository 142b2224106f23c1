//! systemd readiness protocol (`Type=notify`): READY, RELOADING,
//! STOPPING, STATUS and watchdog pings through `sd-notify`. Without
//! `$NOTIFY_SOCKET` every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %crate::text::chain(&e), "Cannot notify systemd.");
    }
}

/// Startup is complete (store open, endpoints bound, sources scheduled).
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A configuration reload started; [`ready`] ends it.
pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(m) => send(&[NotifyState::Reloading, m]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown started.
pub(super) fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A one-line status for `systemctl status`.
pub(super) fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A watchdog keep-alive.
pub(super) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub(super) fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}
