//! `send-test-email SUBSCRIBER`.

use std::io::Write;

use super::AppError;
use crate::config::Config;

/// `send-test-email SUBSCRIBER`: a test mail, sent now.
pub async fn send_test_email(
    config: &Config,
    name: &str,
    out: &mut impl Write,
) -> Result<u8, AppError> {
    let (via, mail, ok) = crate::alert::send_test_email(config, name)
        .await
        .map_err(crate::read::alert_usage)?;
    let to = crate::alert::subscriber(&config.settings, name)
        .map(|s| s.to.join(", "))
        .unwrap_or_default();
    writeln!(out, "test mail sent to {to} via {via}: {}", ok.reply)?;
    writeln!(out, "Message-ID: {}", mail.message_id)?;
    Ok(0)
}
