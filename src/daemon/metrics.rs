//! The daemon's counters, kept and rendered by `prometheus-client` in the
//! Prometheus text format 0.0.4. Every series is named `pivotwatch_…`;
//! counters end in `_total`. Label sets are created up front (at zero) so
//! dashboards see every series from the start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::alert::{DeliveryReport, Outcome};
use crate::check::CheckReport;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// One label and its value.
type Label = [(&'static str, String); 1];

/// Counters by one label, every known value created at zero.
#[derive(Debug, Clone)]
struct Labelled {
    label: &'static str,
    family: Family<Label, Counter>,
}

impl Labelled {
    fn with(label: &'static str, values: &[&str]) -> Labelled {
        let l = Labelled {
            label,
            family: Family::default(),
        };
        for v in values {
            let _ = l.family.get_or_create(&l.key(v));
        }
        l
    }
    fn key(&self, value: &str) -> Label {
        [(self.label, value.to_string())]
    }
    fn add(&self, value: &str, n: u64) {
        self.family.get_or_create(&self.key(value)).inc_by(n);
    }
}

/// Gauges by one label, set from the store at each scrape.
#[derive(Debug, Clone)]
struct LabelledGauge {
    label: &'static str,
    family: Family<Label, Gauge>,
}

impl LabelledGauge {
    fn new(label: &'static str) -> LabelledGauge {
        LabelledGauge {
            label,
            family: Family::default(),
        }
    }
    fn set(&self, value: &str, n: u64) {
        self.family
            .get_or_create(&[(self.label, value.to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Everything the daemon counts, and the registry that renders it.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    checks: Labelled,
    changes: Counter,
    findings: Labelled,
    deliveries: Labelled,
    notices: Labelled,
    reloads: Labelled,
    outbox_depth: LabelledGauge,
    sources: LabelledGauge,
    checks_in_flight: Gauge,
    /// The store's counts and sizes, set at each scrape.
    store: [Gauge; 5],
    /// Time per HTTP request (waiting for the host's turn excluded).
    fetch_latency: Histogram,
    /// Time per check, pagination and store commit included.
    check_duration: Histogram,
    in_flight: AtomicU64,
    /// Companies House stream events read, by stream.
    stream_events: Labelled,
    /// Stream events about a watched company, by stream.
    stream_matched: Labelled,
    /// Seconds between the latest event's publication and its reading,
    /// by stream.
    stream_lag: Family<Label, Gauge<f64, AtomicU64>>,
}

/// The Companies House streams, for their label sets.
const STREAM_NAMES: [&str; 4] = [
    "companies",
    "officers",
    "persons-with-significant-control",
    "filing-history",
];

impl Default for Metrics {
    fn default() -> Self {
        let histogram = || Histogram::new(LATENCY_BUCKETS);
        let m = Metrics {
            registry: Registry::default(),
            checks: Labelled::with(
                "outcome",
                &["new", "changed", "unchanged", "failed", "blocked"],
            ),
            changes: Counter::default(),
            findings: Labelled::with("severity", &["info", "low", "medium", "high", "critical"]),
            deliveries: Labelled::with("outcome", &["sent", "retry", "dead", "deferred", "held"]),
            notices: Labelled::with("kind", &["broken", "recovered", "failed"]),
            reloads: Labelled::with("result", &["ok", "error"]),
            outbox_depth: LabelledGauge::new("state"),
            sources: LabelledGauge::new("health"),
            checks_in_flight: Gauge::default(),
            store: Default::default(),
            fetch_latency: histogram(),
            check_duration: histogram(),
            in_flight: AtomicU64::new(0),
            stream_events: Labelled::with("stream", &STREAM_NAMES),
            stream_matched: Labelled::with("stream", &STREAM_NAMES),
            stream_lag: Family::default(),
        };
        for s in STREAM_NAMES {
            let _ = m.stream_lag.get_or_create(&[("stream", s.to_string())]);
        }
        m.register()
    }
}

/// The store gauges' names and help, in the order of `Metrics::store`.
const STORE_SERIES: [(&str, &str); 5] = [
    ("pivotwatch_store_snapshots", "Snapshots in the store"),
    (
        "pivotwatch_store_bodies",
        "Distinct page bodies in the store (deduplicated evidence)",
    ),
    (
        "pivotwatch_store_body_bytes",
        "Stored (compressed) size of those bodies, in bytes",
    ),
    ("pivotwatch_store_findings", "Findings in the store"),
    (
        "pivotwatch_store_disk_bytes",
        "Size of the store's database on disk, in bytes",
    ),
];

/// Values read from the store when `/metrics` is scraped.
#[derive(Debug, Default, Clone)]
pub(crate) struct Gauges {
    /// Deliveries waiting in the outbox (not dead).
    pub(crate) outbox_pending: u64,
    /// Dead letters.
    pub(crate) outbox_dead: u64,
    /// Sources by health: `ok`, `failing`, `broken`, `unchecked`.
    pub(crate) sources: std::collections::BTreeMap<&'static str, u64>,
    /// Counts and sizes of the store.
    pub(crate) store: crate::store::StoreStats,
}

impl Metrics {
    /// Registers every series, in the order `/metrics` shows them. The
    /// registry appends the full stop to each help text.
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "pivotwatch_build",
            "The running pivotwatch version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "pivotwatch_checks",
            "Checks finished, by outcome",
            self.checks.family.clone(),
        );
        r.register(
            "pivotwatch_changes",
            "Changes found by checks",
            self.changes.clone(),
        );
        r.register(
            "pivotwatch_findings",
            "Findings raised, by severity",
            self.findings.family.clone(),
        );
        r.register(
            "pivotwatch_deliveries",
            "Alert deliveries handled, by outcome",
            self.deliveries.family.clone(),
        );
        r.register(
            "pivotwatch_notices",
            "Source health notices to maintainers, by kind (failed = could not be sent)",
            self.notices.family.clone(),
        );
        r.register(
            "pivotwatch_reloads",
            "Configuration reloads (SIGHUP), by result",
            self.reloads.family.clone(),
        );
        r.register(
            "pivotwatch_outbox_depth",
            "Deliveries in the outbox, by state",
            self.outbox_depth.family.clone(),
        );
        r.register(
            "pivotwatch_sources",
            "Configured sources, by health",
            self.sources.family.clone(),
        );
        for (name, help, gauge) in STORE_SERIES
            .iter()
            .zip(&self.store)
            .map(|((n, h), g)| (n, h, g))
        {
            r.register(*name, *help, gauge.clone());
        }
        r.register(
            "pivotwatch_checks_in_flight",
            "Checks running now",
            self.checks_in_flight.clone(),
        );
        r.register(
            "pivotwatch_fetch_duration_seconds",
            "HTTP request latency, from sending to the end of the body",
            self.fetch_latency.clone(),
        );
        r.register(
            "pivotwatch_check_duration_seconds",
            "Duration of one check, pagination and store commit included",
            self.check_duration.clone(),
        );
        r.register(
            "pivotwatch_stream_events",
            "Companies House stream events read, by stream",
            self.stream_events.family.clone(),
        );
        r.register(
            "pivotwatch_stream_events_matched",
            "Companies House stream events about a watched company, by stream",
            self.stream_matched.family.clone(),
        );
        r.register(
            "pivotwatch_stream_lag_seconds",
            "Time from publication to reading of the latest event, by stream",
            self.stream_lag.clone(),
        );
        self
    }

    /// Counts `n` events read on a stream, `matched` of them about a
    /// watched company, the latest published `lag` ago.
    pub(crate) fn stream_events(&self, stream: &str, n: u64, matched: u64, lag: Option<Duration>) {
        self.stream_events.add(stream, n);
        self.stream_matched.add(stream, matched);
        if let Some(lag) = lag {
            self.stream_lag
                .get_or_create(&[("stream", stream.to_string())])
                .set(lag.as_secs_f64());
        }
    }

    /// Counts one finished check.
    pub(crate) fn check_done(&self, r: &CheckReport, took: Duration) {
        self.checks.add(&r.status.to_string(), 1);
        self.changes.inc_by(r.changes.len() as u64);
        for f in &r.findings {
            self.findings.add(f.severity.as_str(), 1);
        }
        self.check_duration.observe(took.as_secs_f64());
    }

    /// Counts one HTTP request's time.
    pub(crate) fn fetch_done(&self, took: Duration) {
        self.fetch_latency.observe(took.as_secs_f64());
    }

    /// Counts the mails of one delivery run.
    pub(crate) fn delivered(&self, r: &DeliveryReport) {
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
    pub(crate) fn notice(&self, kind: &str) {
        self.notices.add(kind, 1);
    }

    /// Counts a configuration reload (`ok` or `error`).
    pub(crate) fn reload(&self, result: &str) {
        self.reloads.add(result, 1);
    }

    /// A check started (`+1`) or ended (`-1`).
    pub(crate) fn in_flight(&self, started: bool) {
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
    pub(crate) fn checks_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition ([`CONTENT_TYPE`]), with the values
    /// read from the store at this scrape.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        self.outbox_depth.set("pending", g.outbox_pending);
        self.outbox_depth.set("dead", g.outbox_dead);
        for h in ["ok", "failing", "broken", "unchecked"] {
            self.sources.set(h, g.sources.get(h).copied().unwrap_or(0));
        }
        let st = &g.store;
        for (gauge, v) in self.store.iter().zip([
            st.snapshots,
            st.blobs,
            st.blob_bytes,
            st.findings,
            st.disk_bytes,
        ]) {
            gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        self.checks_in_flight
            .set(i64::try_from(self.checks_in_flight()).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.fetch_done(Duration::from_millis(30));
        m.fetch_done(Duration::from_millis(700));
        let s = m.render(&Gauges::default());
        let x = "pivotwatch_fetch_duration_seconds";
        assert!(s.contains(&format!("{x}_bucket{{le=\"0.05\"}} 1\n")), "{s}");
        assert!(s.contains(&format!("{x}_bucket{{le=\"1\"}} 2\n")), "{s}");
        assert!(s.contains(&format!("{x}_bucket{{le=\"+Inf\"}} 2\n")), "{s}");
        assert!(s.contains(&format!("{x}_count 2\n")), "{s}");
        // Label values are escaped (backslash, double quote, line feed).
        m.notice("a\"b\\c\nd");
        let s = m.render(&Gauges::default());
        assert!(
            s.contains("pivotwatch_notices_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{s}"
        );
    }

    #[test]
    fn series_names_types_and_help_are_those_dashboards_know() {
        let s = Metrics::default().render(&Gauges::default());
        for line in [
            "# HELP pivotwatch_build_info The running pivotwatch version.\n# TYPE pivotwatch_build_info gauge\n",
            "# HELP pivotwatch_checks_total Checks finished, by outcome.\n# TYPE pivotwatch_checks_total counter\n",
            "pivotwatch_checks_total{outcome=\"new\"} 0\n",
            "# TYPE pivotwatch_changes_total counter\npivotwatch_changes_total 0\n",
            "# HELP pivotwatch_notices_total Source health notices to maintainers, by kind (failed = could not be sent).\n",
            "pivotwatch_reloads_total{result=\"error\"} 0\n",
            "# TYPE pivotwatch_outbox_depth gauge\n",
            "pivotwatch_outbox_depth{state=\"dead\"} 0\n",
            "pivotwatch_sources{health=\"unchecked\"} 0\n",
            "# TYPE pivotwatch_checks_in_flight gauge\npivotwatch_checks_in_flight 0\n",
            "# TYPE pivotwatch_check_duration_seconds histogram\n",
        ] {
            assert!(s.contains(line), "{line:?} missing in\n{s}");
        }
        assert!(
            s.contains(&format!(
                "pivotwatch_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{s}"
        );
    }
}
