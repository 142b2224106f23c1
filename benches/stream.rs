//! The Companies House stream filter: one event line parsed
//! (`registry::stream::parse_event`, which skips `data`) and its company
//! number looked up among the watched ones, as `daemon/stream.rs` does for
//! every line. Events are shaped like the API's (a `data` object of about
//! 1.3 KB, officers' events being of that size), 1 in 1000 for a watched
//! company.
//!
//! `cargo bench --bench stream`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pivotwatch::registry::stream::parse_event;

fn line(number: u32, timepoint: u64) -> String {
    let officers: Vec<String> = (0..6)
        .map(|i| {
            format!(
                r#"{{"name":"OFFICER {i} OF {number:08}","officer_role":"director","appointed_on":"2019-0{}-1{i}","nationality":"British","country_of_residence":"England","address":{{"premises":"{i}","address_line_1":"High Street","locality":"London","postal_code":"EC1A 1BB"}}}}"#,
                1 + i % 9
            )
        })
        .collect();
    format!(
        r#"{{"resource_kind":"company-officers","resource_uri":"/company/{number:08}/appointments/a{timepoint}","resource_id":"a{timepoint}","data":{{"items":[{}],"etag":"5e1a2b3c4d5e6f70","links":{{"self":"/company/{number:08}/officers"}}}},"event":{{"timepoint":{timepoint},"published_at":"2026-11-20T10:00:00Z","type":"changed"}}}}"#,
        officers.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let lines: Vec<String> = (0..10_000u32)
        .map(|i| line(i * 7 + 1, 1_000 + u64::from(i)))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    // Ten watched companies, one of which the lines name every 1000th.
    let watched: HashMap<String, Vec<String>> = (0..10u32)
        .map(|i| (format!("{:08}", i * 7000 + 1), vec![format!("e{i}/ch")]))
        .collect();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("filter 10k events", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for l in &lines {
                if let Some(Ok(e)) = parse_event(black_box(l.as_bytes()))
                    && e.company
                        .as_deref()
                        .is_some_and(|c| watched.contains_key(c))
                {
                    matched += 1;
                }
            }
            assert_eq!(matched, 10);
            matched
        })
    });
    g.finish();
    eprintln!(
        "{} events, {} bytes ({:.0} bytes per event)",
        lines.len(),
        bytes,
        bytes as f64 / lines.len() as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
