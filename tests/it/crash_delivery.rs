//! kill -9 during delivery, briefly (the long run is
//! `cargo bench --bench crash_delivery`; figures in BENCHMARKS.md): a real
//! `pivotwatch once` delivering to a real SMTP server on loopback is
//! SIGKILLed at a random moment of its delivery phase, then run again
//! until the outbox is empty. Nothing may be lost, and every duplicate must
//! carry its finding's Message-ID. The duplicate rate is printed, not
//! asserted (a timing figure).

use crate::support::crash_loop;

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_nothing_and_duplicates_keep_their_message_id() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let fig = crash_loop::run(&crash_loop::Params {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_pivotwatch")),
        iterations: 50,
        findings: 10,
        seed,
    })
    .await;
    eprintln!("crash_delivery (seed {seed}): {}", fig.line());
    assert_eq!(fig.iterations, 50);
    assert_eq!(fig.findings, 500);
    assert_eq!(fig.lost, 0, "{}", fig.line());
    assert_eq!(fig.wrong_ids, 0, "{}", fig.line());
    assert_eq!(fig.mails, fig.findings + fig.duplicates, "{}", fig.line());
    assert!(
        fig.kills_live > 0,
        "some kills hit a running process: {}",
        fig.line()
    );
}
