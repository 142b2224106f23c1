//! The delivery side: the `outbox` (pending and dead [`Delivery`]s), the
//! `sent` log and the `digests` tree (subscriber → [`DigestState`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::codec::{dec, enc, get, values};
use super::error::Fault;
use super::inner::Inner;
use super::{Store, StoreError};

/// One pending or finished delivery of a finding to a subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Store-wide unique id.
    pub id: u64,
    /// The finding delivered.
    pub finding: u64,
    /// Subscriber name.
    pub subscriber: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<DateTime<Utc>>,
    /// Last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Given up (permanent failure).
    #[serde(default)]
    pub dead: bool,
    /// When it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<DateTime<Utc>>,
    /// Set when an attempt starts and cleared when its outcome is recorded.
    /// Still set at the next run means the process died mid-send: the mail
    /// may have arrived, and is sent again with the same Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<DateTime<Utc>>,
    /// Message-ID of the mail that carried it (the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The server's reply (or the spool file) when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The most recent attempts, oldest first (at most [`MAX_ATTEMPT_LOG`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Attempt>,
}

/// How many attempts a [`Delivery`] remembers.
pub const MAX_ATTEMPT_LOG: usize = 10;

/// One delivery attempt, as recorded in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// `sent`, `retry` (transient failure), `dead` (permanent failure),
    /// `deferred` (not tried because an earlier send to the same
    /// subscriber could not reach the server) or `requeued` (by
    /// `pivotwatch outbox retry`).
    pub outcome: String,
    /// The server's reply or the error.
    pub detail: String,
}

impl Delivery {
    /// Appends an attempt to [`Delivery::history`], keeping the last
    /// [`MAX_ATTEMPT_LOG`].
    pub fn record(&mut self, at: DateTime<Utc>, outcome: &str, detail: &str) {
        self.history.push(Attempt {
            at,
            outcome: outcome.to_string(),
            detail: detail.to_string(),
        });
        if self.history.len() > MAX_ATTEMPT_LOG {
            let extra = self.history.len() - MAX_ATTEMPT_LOG;
            self.history.drain(..extra);
        }
    }
}

/// When a digest subscriber last got its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestState {
    /// When the last digest was sent.
    pub last_sent: DateTime<Utc>,
    /// Its Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// How many findings it carried.
    #[serde(default)]
    pub findings: usize,
}

impl Store {
    /// Pending (not dead) deliveries, oldest first.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.pending_deliveries())
    }

    /// Every delivery in the outbox (pending and dead), oldest first.
    pub fn outbox_all(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.outbox_all())
    }

    /// The delivery log (sent deliveries), oldest first.
    pub fn sent_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.run(|i| i.sent_deliveries())
    }

    /// A delivery still in the outbox (pending or dead).
    pub fn delivery(&self, id: u64) -> Result<Option<Delivery>, StoreError> {
        self.run(|i| i.delivery(id))
    }

    /// Updates several deliveries still in the outbox at once (failed
    /// attempts, dead letters, requeued ones), then flushes.
    pub fn update_deliveries(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        let ds = ds.to_vec();
        self.bounded(move |i| i.update_deliveries(&ds))
    }

    /// Marks deliveries as in flight (an attempt started), flushed before
    /// the send, so a crash mid-send is known at the next run (the mail may
    /// have arrived: "possible duplicate").
    pub fn note_in_flight(&self, ds: &[Delivery]) -> Result<(), StoreError> {
        let ds = ds.to_vec();
        self.bounded(move |i| i.note_in_flight(&ds))
    }

    /// Moves sent deliveries (as given: `sent_at`, `attempts`, `history`
    /// already filled in) from the outbox to the log and, for a digest,
    /// records the subscriber's digest state, all in one transaction; then
    /// flushes. A delivery that is no longer in the outbox is not logged
    /// twice.
    pub fn mark_sent_batch(
        &self,
        ds: &[Delivery],
        digest: Option<(&str, &DigestState)>,
    ) -> Result<(), StoreError> {
        let ds = ds.to_vec();
        let digest = digest.map(|(n, s)| (n.to_string(), s.clone()));
        self.bounded(move |i| i.mark_sent_batch(&ds, digest.as_ref().map(|(n, s)| (n.as_str(), s))))
    }

    /// When a digest subscriber last got its digest.
    pub fn digest_state(&self, subscriber: &str) -> Result<Option<DigestState>, StoreError> {
        self.run(|i| i.digest_state(subscriber))
    }
}

impl Inner {
    /// Pending (not dead) deliveries, oldest first.
    pub(super) fn pending_deliveries(&self) -> Result<Vec<Delivery>, Fault> {
        Ok(self.outbox_all()?.into_iter().filter(|d| !d.dead).collect())
    }

    /// Every delivery in the outbox (pending and dead), oldest first.
    pub(super) fn outbox_all(&self) -> Result<Vec<Delivery>, Fault> {
        values(&self.outbox, dec)
    }

    /// The delivery log (sent deliveries), oldest first.
    pub(super) fn sent_deliveries(&self) -> Result<Vec<Delivery>, Fault> {
        values(&self.sent, dec)
    }

    /// A delivery still in the outbox (pending or dead).
    pub(super) fn delivery(&self, id: u64) -> Result<Option<Delivery>, Fault> {
        get(&self.outbox, id.to_be_bytes(), dec)
    }

    /// Updates several deliveries still in the outbox at once (failed
    /// attempts, dead letters, requeued ones), then flushes.
    pub(super) fn update_deliveries(&self, ds: &[Delivery]) -> Result<(), Fault> {
        let mut batch = sled::Batch::default();
        for d in ds {
            batch.insert(&d.id.to_be_bytes(), enc(d));
        }
        self.outbox.apply_batch(batch)?;
        self.flush()?;
        Ok(())
    }

    /// Marks deliveries as in flight (an attempt started), flushed before
    /// the send, so a crash mid-send is known at the next run (the mail may
    /// have arrived: "possible duplicate").
    pub(super) fn note_in_flight(&self, ds: &[Delivery]) -> Result<(), Fault> {
        self.update_deliveries(ds)
    }

    /// Moves sent deliveries (as given: `sent_at`, `attempts`, `history`
    /// already filled in) from the outbox to the log and, for a digest,
    /// records the subscriber's digest state, all in one transaction; then
    /// flushes. A delivery that is no longer in the outbox is not logged
    /// twice.
    pub(super) fn mark_sent_batch(
        &self,
        ds: &[Delivery],
        digest: Option<(&str, &DigestState)>,
    ) -> Result<(), Fault> {
        let res: Result<(), TransactionError<()>> = (&self.outbox, &self.sent, &self.digests)
            .transaction(|(outbox, sent, digests)| {
                for d in ds {
                    let k = d.id.to_be_bytes();
                    if outbox.remove(&k)?.is_some() {
                        sent.insert(&k, enc(d))?;
                    }
                }
                if let Some((name, state)) = digest {
                    digests.insert(name.as_bytes(), enc(state))?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match res {
            Ok(()) | Err(TransactionError::Abort(())) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.flush()?;
        Ok(())
    }

    /// When a digest subscriber last got its digest.
    pub(super) fn digest_state(&self, subscriber: &str) -> Result<Option<DigestState>, Fault> {
        get(&self.digests, subscriber, dec)
    }
}
