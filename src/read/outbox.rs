//! `outbox`: the deliveries waiting or dead, and `outbox retry`.

use std::io::Write;

use super::ReadError;
use crate::config::Config;
use crate::store::Store;
use crate::text::for_display;

/// An alert error that names a thing that is not there is wrong usage.
pub(crate) fn alert_usage(e: crate::alert::AlertError) -> ReadError {
    use crate::alert::AlertError as A;
    match e {
        A::UnknownSubscriber(_) | A::UnknownDelivery(_) => ReadError::Usage(crate::text::chain(&e)),
        other => ReadError::Alert(other),
    }
}

/// Prints what a delivery run did, one line per mail.
pub fn print_delivery(
    report: &crate::alert::DeliveryReport,
    out: &mut impl Write,
) -> std::io::Result<()> {
    use crate::alert::Outcome;
    for m in &report.mails {
        let first = m.deliveries.first();
        let what = if m.digest {
            format!("digest of {} finding(s)", m.deliveries.len())
        } else {
            format!(
                "alert for finding {}",
                first.map(|d| d.finding).unwrap_or_default()
            )
        };
        let id = first.map(|d| d.id).unwrap_or_default();
        match &m.outcome {
            Outcome::Sent { file: Some(f), .. } => writeln!(out, "alert written: {}", f.display())?,
            Outcome::Sent { reply, file: None } => writeln!(
                out,
                "{what} sent to {}: {} ({})",
                m.subscriber,
                for_display(&m.subject),
                for_display(reply)
            )?,
            Outcome::Retry {
                error,
                next_attempt,
            } => writeln!(
                out,
                "{what} to {} still queued (delivery {id}, next attempt {}): {}",
                m.subscriber,
                next_attempt.format("%Y-%m-%d %H:%M:%S UTC"),
                for_display(error)
            )?,
            Outcome::Dead { error } => writeln!(
                out,
                "{what} to {} failed permanently (dead letter {id}; fix the cause, then `pivotwatch outbox retry {id}`): {}",
                m.subscriber,
                for_display(error)
            )?,
            Outcome::Deferred {
                error,
                next_attempt,
            } => writeln!(
                out,
                "{what} to {} deferred to {}: {}",
                m.subscriber,
                next_attempt.format("%Y-%m-%d %H:%M:%S UTC"),
                for_display(error)
            )?,
            Outcome::Held { reason } => writeln!(
                out,
                "{} alert(s) for {} held: {}",
                m.deliveries.len(),
                m.subscriber,
                for_display(reason)
            )?,
        }
        if m.possible_duplicate {
            writeln!(
                out,
                "  an earlier attempt was interrupted: it may arrive twice, with the same Message-ID {}",
                m.message_id
            )?;
        }
    }
    Ok(())
}

fn delivery_state(d: &crate::store::Delivery) -> &'static str {
    if d.dead {
        "dead"
    } else if d.next_attempt.is_some() {
        "retry"
    } else {
        "queued"
    }
}

/// `outbox [list [--json]]`.
pub(crate) fn list(
    config: &Config,
    store: &Store,
    json: bool,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    {
        {
            let all = store.outbox_all()?;
            if json {
                for d in &all {
                    let mut v = serde_json::to_value(d).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("state".into(), delivery_state(d).into());
                    }
                    writeln!(out, "{v}")?;
                }
                return Ok(0);
            }
            if all.is_empty() {
                writeln!(
                    out,
                    "outbox empty: every alert was delivered ({} in the delivery log)",
                    store.sent_deliveries()?.len()
                )?;
                return Ok(0);
            }
            writeln!(
                out,
                "{:>8}  {:<6}  {:<16}  {:>8}  {:>8}  {:<20}  LAST ERROR",
                "ID", "STATE", "SUBSCRIBER", "FINDING", "ATTEMPTS", "NEXT ATTEMPT"
            )?;
            for d in &all {
                let mode = crate::alert::subscriber(&config.settings, &d.subscriber)
                    .is_some_and(|s| s.mode == crate::config::DeliveryMode::Digest);
                writeln!(
                    out,
                    "{:>8}  {:<6}  {:<16}  {:>8}  {:>8}  {:<20}  {}",
                    d.id,
                    delivery_state(d),
                    if mode {
                        format!("{} (digest)", d.subscriber)
                    } else {
                        d.subscriber.clone()
                    },
                    d.finding,
                    d.attempts,
                    d.next_attempt
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into()),
                    for_display(d.last_error.as_deref().unwrap_or(""))
                )?;
            }
            let dead = all.iter().filter(|d| d.dead).count();
            writeln!(
                out,
                "{} pending, {dead} dead; `pivotwatch outbox retry ID` or `--all` requeues and sends",
                all.len() - dead
            )?;
            Ok(0)
        }
    }
}

/// `outbox retry ID | --all` (`id` `None`).
pub(crate) async fn retry(
    config: &Config,
    store: &Store,
    id: Option<u64>,
    out: &mut impl Write,
) -> Result<u8, ReadError> {
    {
        {
            let requeued = crate::alert::requeue(store, id).map_err(alert_usage)?;
            writeln!(out, "requeued {} delivery(ies)", requeued.len())?;
            let report = crate::alert::deliver_pending(store, config).await?;
            print_delivery(&report, out)?;
            Ok(0)
        }
    }
}
