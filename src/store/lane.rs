//! The source-state lane: the small store calls of many concurrent checks
//! (read a source's state at the start, write it back when nothing
//! changed or the check failed) carried to the blocking pool in batches.
//!
//! Each [`blocking`](super::blocking) call is a hand-off to a pool thread
//! and a wake-up back: two context switches for a read of a few hundred
//! bytes. A pass over 1000 unchanged sources made 2000 of them, and
//! `perf` put a fifth of its CPU in that traffic (BENCHMARKS.md, issue
//! 16). The lane runs every call queued while the previous batch ran in
//! one blocking task, in the order they were queued, and answers each
//! caller on the async side, so a batch costs one hand-off however many
//! calls it holds.
//!
//! Each call keeps its own result: one failing read fails only its check.
//! A batch whose task panicked fails every call in it as
//! [`StoreError::Lane`]. The lane's serving task is started by the first
//! call, on the runtime that makes it, and again if that runtime went away.

use std::sync::{Mutex, PoisonError, Weak};

use tokio::sync::{mpsc, oneshot};

use super::{Handle, SourceState, Store, StoreError};

/// At most this many calls run in one blocking task, so that one batch
/// does not hold every caller behind a long queue.
const MAX_BATCH: usize = 64;

/// A handle on the lane of one store. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct StateLane {
    store: Store,
    tx: std::sync::Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
}

impl std::fmt::Debug for StateLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLane")
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

/// One queued call: run on the blocking pool, it gives back the hand-over
/// of its result, which the serving task then runs on the async side.
type Job = Box<dyn FnOnce(&Store) -> Reply + Send>;
type Reply = Box<dyn FnOnce() + Send>;

impl StateLane {
    /// The lane of `store`. Starts nothing until the first call.
    pub fn new(store: Store) -> StateLane {
        StateLane {
            store,
            tx: std::sync::Arc::new(Mutex::new(None)),
        }
    }

    /// `Store::source_state`, batched.
    pub async fn source_state(&self, key: &str) -> Result<Option<SourceState>, StoreError> {
        let key = key.to_owned();
        self.call(move |s| s.source_state(&key)).await
    }

    /// `Store::put_source_state`, batched.
    pub async fn put_source_state(&self, key: &str, state: SourceState) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |s| s.put_source_state(&key, &state)).await
    }

    /// Queues `f` for the next batch and waits for its answer. A caller
    /// that goes away (its check was cancelled) drops the answer; the call
    /// itself runs, as a `blocking` one would have.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Box::new(move |s| {
            let r = f(s);
            Box::new(move || {
                let _ = reply.send(r);
            })
        }));
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Lane {
                path: self.store.path().to_path_buf(),
            })
        })
    }

    /// Queues `job`, starting the serving task when there is none (or it
    /// ended with the runtime that ran it). Outside a tokio runtime the
    /// job is dropped, and its caller gets `StoreError::Lane`.
    fn send(&self, job: Job) {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match tx.as_ref() {
            Some(t) => match t.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (new_tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(serve(std::sync::Arc::downgrade(&self.store.h), rx));
        // The receiver was just made and is alive: the send cannot fail.
        let _ = new_tx.send(job);
        *tx = Some(new_tx);
    }
}

/// Takes every job queued, runs them in one blocking task, answers each;
/// ends when every [`StateLane`] clone is gone. It holds the store only
/// while a batch runs: a task not yet polled after the last handle went
/// must not keep the database (and its lock) open.
async fn serve(store: Weak<Handle>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH));
        // Every handle is gone: the callers' answers drop with the batch.
        let Some(h) = store.upgrade() else {
            return;
        };
        let s = Store { h };
        let ran = tokio::task::spawn_blocking(move || {
            batch.into_iter().map(|job| job(&s)).collect::<Vec<_>>()
        })
        .await;
        match ran {
            Ok(replies) => replies.into_iter().for_each(|reply| reply()),
            // The answers went down with the task: each caller sees its
            // channel closed, which is `StoreError::Lane`.
            Err(e) => {
                tracing::error!(error = %e, "A batch of store calls ended without an answer.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: u32) -> SourceState {
        SourceState {
            consecutive_failures: n,
            etag: Some(format!("\"e{n}\"")),
            ..SourceState::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_each_get_their_own_answer_in_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let lane = StateLane::new(store.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..300u32 {
            let lane = lane.clone();
            tasks.spawn(async move {
                let key = format!("e{}/s", n % 150);
                // Half the keys are written twice, by two tasks; each task
                // reads back after its own write, so it sees a state
                // written for that key (its own or the other task's).
                assert_eq!(
                    lane.source_state(&format!("none/{n}")).await.expect("get"),
                    None
                );
                lane.put_source_state(&key, state(n)).await.expect("put");
                let got = lane.source_state(&key).await.expect("get").expect("stored");
                assert!(got.consecutive_failures % 150 == n % 150, "{key}: {got:?}");
                // Its own order: a put then a get of a key only it writes.
                let own = format!("own/{n}");
                lane.put_source_state(&own, state(n)).await.expect("put");
                lane.put_source_state(&own, state(n + 1000))
                    .await
                    .expect("put");
                let got = lane.source_state(&own).await.expect("get").expect("stored");
                assert_eq!(got, state(n + 1000));
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
        // What the lane wrote is in the store.
        for n in 0..300u32 {
            assert_eq!(
                store.source_state(&format!("own/{n}")).expect("get"),
                Some(state(n + 1000))
            );
        }
    }

    #[tokio::test]
    async fn the_lane_does_not_hold_the_store_open_once_its_handles_are_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let lane = StateLane::new(store.clone());
        lane.put_source_state("a/b", state(1)).await.expect("put");
        drop(lane);
        drop(store);
        // No yield to the runtime in between: the serving task has not run
        // since, and must not be what keeps the database locked.
        let again =
            Store::open_waiting(dir.path(), std::time::Duration::from_secs(2)).expect("reopen");
        assert_eq!(again.source_state("a/b").expect("get"), Some(state(1)));
    }

    #[test]
    fn the_lane_serves_again_after_the_runtime_that_started_it_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let lane = StateLane::new(store);
        let first = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        first
            .block_on(lane.put_source_state("a/b", state(7)))
            .expect("put");
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = second.block_on(lane.source_state("a/b")).expect("get");
        assert_eq!(got, Some(state(7)));
    }

    #[test]
    fn outside_a_runtime_a_call_is_a_lane_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let lane = StateLane::new(store);
        let err = futures_util::FutureExt::now_or_never(lane.source_state("a/b"))
            .expect("the call answers at once");
        assert!(matches!(err, Err(StoreError::Lane { .. })), "{err:?}");
    }
}
