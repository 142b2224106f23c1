//! The daemon's counters and their Prometheus text rendering (format
//! 0.0.4). Every series is named `pivotwatch_…`; counters end in `_total`.
//! Label sets are created up front (at zero) so dashboards see every
//! series from the start.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::alert::{DeliveryReport, Outcome};
use crate::check::CheckReport;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= *le {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters by one label.
#[derive(Debug, Default)]
struct Labelled(Mutex<BTreeMap<String, u64>>);

impl Labelled {
    fn with(keys: &[&str]) -> Labelled {
        Labelled(Mutex::new(
            keys.iter().map(|k| (k.to_string(), 0)).collect(),
        ))
    }
    fn add(&self, key: &str, n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_string())
            .or_default() += n;
    }
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Everything the daemon counts.
#[derive(Debug)]
pub struct Metrics {
    checks: Labelled,
    changes: AtomicU64,
    findings: Labelled,
    deliveries: Labelled,
    notices: Labelled,
    reloads: Labelled,
    /// Time per HTTP request (waiting for the host's turn excluded).
    pub fetch_latency: Histogram,
    /// Time per check, pagination and store commit included.
    pub check_duration: Histogram,
    in_flight: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            checks: Labelled::with(&["new", "changed", "unchanged", "failed", "blocked"]),
            changes: AtomicU64::new(0),
            findings: Labelled::with(&["info", "low", "medium", "high", "critical"]),
            deliveries: Labelled::with(&["sent", "retry", "dead", "deferred", "held"]),
            notices: Labelled::with(&["broken", "recovered", "failed"]),
            reloads: Labelled::with(&["ok", "error"]),
            fetch_latency: Histogram::default(),
            check_duration: Histogram::default(),
            in_flight: AtomicU64::new(0),
        }
    }
}

/// Values read from the store when `/metrics` is scraped.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Deliveries waiting in the outbox (not dead).
    pub outbox_pending: u64,
    /// Dead letters.
    pub outbox_dead: u64,
    /// Sources by health: `ok`, `failing`, `broken`, `unchecked`.
    pub sources: BTreeMap<&'static str, u64>,
    /// Counts and sizes of the store.
    pub store: crate::store::StoreStats,
}

impl Metrics {
    /// Counts one finished check.
    pub fn check_done(&self, r: &CheckReport, took: Duration) {
        self.checks.add(&r.status.to_string(), 1);
        self.changes
            .fetch_add(r.changes.len() as u64, Ordering::Relaxed);
        for f in &r.findings {
            self.findings.add(f.severity.as_str(), 1);
        }
        self.check_duration.observe(took);
    }

    /// Counts the mails of one delivery run.
    pub fn delivered(&self, r: &DeliveryReport) {
        for m in &r.mails {
            let k = match m.outcome {
                Outcome::Sent { .. } => "sent",
                Outcome::Retry { .. } => "retry",
                Outcome::Dead { .. } => "dead",
                Outcome::Deferred { .. } => "deferred",
                Outcome::Held { .. } => "held",
            };
            self.deliveries.add(k, m.deliveries.len().max(1) as u64);
        }
    }

    /// Counts a maintainer notice (`broken`, `recovered`, `failed`).
    pub fn notice(&self, kind: &str) {
        self.notices.add(kind, 1);
    }

    /// Counts a configuration reload (`ok` or `error`).
    pub fn reload(&self, result: &str) {
        self.reloads.add(result, 1);
    }

    /// A check started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, started: bool) {
        if started {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(1))
                });
        }
    }

    /// Checks in flight now.
    pub fn checks_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pivotwatch_build_info The running pivotwatch version.\n# TYPE pivotwatch_build_info gauge\npivotwatch_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        counter(
            &mut out,
            "pivotwatch_checks_total",
            "Checks finished, by outcome.",
            "outcome",
            &self.checks.snapshot(),
        );
        let _ = writeln!(
            out,
            "# HELP pivotwatch_changes_total Changes found by checks.\n# TYPE pivotwatch_changes_total counter\npivotwatch_changes_total {}",
            self.changes.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "pivotwatch_findings_total",
            "Findings raised, by severity.",
            "severity",
            &self.findings.snapshot(),
        );
        counter(
            &mut out,
            "pivotwatch_deliveries_total",
            "Alert deliveries handled, by outcome.",
            "outcome",
            &self.deliveries.snapshot(),
        );
        counter(
            &mut out,
            "pivotwatch_notices_total",
            "Source health notices to maintainers, by kind (failed = could not be sent).",
            "kind",
            &self.notices.snapshot(),
        );
        counter(
            &mut out,
            "pivotwatch_reloads_total",
            "Configuration reloads (SIGHUP), by result.",
            "result",
            &self.reloads.snapshot(),
        );
        let _ = writeln!(
            out,
            "# HELP pivotwatch_outbox_depth Deliveries in the outbox, by state.\n# TYPE pivotwatch_outbox_depth gauge\npivotwatch_outbox_depth{{state=\"pending\"}} {}\npivotwatch_outbox_depth{{state=\"dead\"}} {}",
            g.outbox_pending, g.outbox_dead
        );
        let _ = writeln!(
            out,
            "# HELP pivotwatch_sources Configured sources, by health.\n# TYPE pivotwatch_sources gauge"
        );
        for h in ["ok", "failing", "broken", "unchecked"] {
            let _ = writeln!(
                out,
                "pivotwatch_sources{{health=\"{h}\"}} {}",
                g.sources.get(h).copied().unwrap_or(0)
            );
        }
        for (name, help, v) in [
            (
                "pivotwatch_store_snapshots",
                "Snapshots in the store.",
                g.store.snapshots,
            ),
            (
                "pivotwatch_store_bodies",
                "Distinct page bodies in the store (deduplicated evidence).",
                g.store.blobs,
            ),
            (
                "pivotwatch_store_body_bytes",
                "Stored (compressed) size of those bodies, in bytes.",
                g.store.blob_bytes,
            ),
            (
                "pivotwatch_store_findings",
                "Findings in the store.",
                g.store.findings,
            ),
            (
                "pivotwatch_store_disk_bytes",
                "Size of the store's database on disk, in bytes.",
                g.store.disk_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP pivotwatch_checks_in_flight Checks running now.\n# TYPE pivotwatch_checks_in_flight gauge\npivotwatch_checks_in_flight {}",
            self.checks_in_flight()
        );
        self.fetch_latency.render(
            &mut out,
            "pivotwatch_fetch_duration_seconds",
            "HTTP request latency, from sending to the end of the body.",
        );
        self.check_duration.render(
            &mut out,
            "pivotwatch_check_duration_seconds",
            "Duration of one check, pagination and store commit included.",
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, label: &str, v: &BTreeMap<String, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (k, n) in v {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(k));
    }
}

/// Escapes a label value (backslash, double quote, line feed).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_millis(700));
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.05\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 2\n"), "{s}");
        assert!(s.contains("x_count 2\n"), "{s}");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
