//! The kill -9 delivery loop at length (BENCHMARKS.md, "Crash
//! duplicates"). tests/it/crash_delivery.rs runs the same loop 50 times.
//!
//! `cargo bench --bench crash_delivery -- --iterations 600 [--findings 10]
//! [--seed N] [--bin PATH] [--max-secs 600]`
//!
//! Prints one line of figures: iterations, findings, mails, lost,
//! duplicates (and their share of findings), wrong Message-IDs.

#[path = "../tests/it/support/crash_loop.rs"]
mod crash_loop;
#[path = "../tests/it/support/smtp.rs"]
mod smtp;

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |name: &str, default: u64| {
        arg(&args, name)
            .map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name} {v}: not a number"))
            })
            .unwrap_or(default)
    };
    let iterations = num("--iterations", 600) as usize;
    let findings = num("--findings", 10) as usize;
    let seed = num("--seed", fastrand::u64(..));
    let max = Duration::from_secs(num("--max-secs", 600));
    let bin = arg(&args, "--bin")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pivotwatch")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let start = Instant::now();
        let mut total = crash_loop::Figures::default();
        // Batches of 50, so --max-secs can stop a long run between them.
        while total.iterations < iterations && start.elapsed() < max {
            let n = (iterations - total.iterations).min(50);
            let f = crash_loop::run(&crash_loop::Params {
                bin: bin.clone(),
                iterations: n,
                findings,
                seed: seed.wrapping_add(total.iterations as u64),
            })
            .await;
            total.iterations += f.iterations;
            total.findings += f.findings;
            total.mails += f.mails;
            total.lost += f.lost;
            total.duplicates += f.duplicates;
            total.wrong_ids += f.wrong_ids;
            total.kills_live += f.kills_live;
            total.restarts += f.restarts;
            total.delivery_phase = total.delivery_phase.max(f.delivery_phase);
            eprintln!("  batch: {}", f.line());
        }
        total.took = start.elapsed();
        println!(
            "crash_delivery ({}, seed {seed}, {findings} alerts per iteration): {}",
            bin.display(),
            total.line()
        );
    });
}
