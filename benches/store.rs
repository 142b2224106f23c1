//! Store operations of one check: a full commit (snapshot of a 120-item
//! catalogue, its ~45 KB body as a zstd blob, source state), unflushed as
//! in a pass without alerts and flushed as one that queues an alert; the
//! source-state write of an unchanged check; and the reads of a check
//! whose body changed (state + latest snapshot).
//!
//! `cargo bench --bench store`

use std::hint::black_box;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pivotwatch::record::{CheckStatus, Snapshot};
use pivotwatch::store::{Commit, NewSnapshot, SourceState, Store, body_hash};

mod common;

use common::pages;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let (cat, _) = common_spec();
    let model = pages::Model {
        seed: "pivotwatch".into(),
        n: 2,
        fraction: 0.0,
        noise_fraction: 0.0,
    };
    let body = model.render(0, &pages::PageState::default());
    let base = url::Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let record =
        pivotwatch::extract::extract_html(&cat, &body, &base, &|| std::time::Duration::ZERO)
            .expect("extracts")
            .record;
    let mut n = 0u64;
    let mut commit = |key: &str| {
        n += 1;
        let mut body = body.clone().into_bytes();
        body.extend_from_slice(format!("<!-- {n} -->").as_bytes());
        let state = SourceState {
            last_check: Some(Utc::now()),
            last_status: Some(CheckStatus::Changed),
            etag: Some(format!("\"{n:016x}\"")),
            body_hash: Some(body_hash(&body)),
            ..SourceState::default()
        };
        Commit {
            source: key.to_string(),
            state,
            snapshot: Some(NewSnapshot {
                snapshot: Snapshot {
                    id: 0,
                    source: key.to_string(),
                    url: base.to_string(),
                    fetched_at: Utc::now(),
                    http_status: 200,
                    body_hash: body_hash(&body),
                    record: record.clone(),
                    fetch: None,
                },
                body,
            }),
            findings: vec![],
            deliveries: vec![],
        }
    };
    let mut g = c.benchmark_group("store");
    g.sample_size(20);
    let mut k = 0usize;
    g.bench_function("commit (snapshot + blob + state)", |b| {
        b.iter_batched(
            || {
                k += 1;
                commit(&format!("e{}/catalogue", k % 1000))
            },
            |cm| black_box(store.commit(cm).expect("commit")),
            BatchSize::SmallInput,
        )
    });
    // What a commit that queues an alert costs: the same, then fsync.
    g.bench_function("commit + flush (as when it queues an alert)", |b| {
        b.iter_batched(
            || {
                k += 1;
                commit(&format!("e{}/catalogue", k % 1000))
            },
            |cm| {
                black_box(store.commit(cm).expect("commit"));
                store.flush().expect("flush")
            },
            BatchSize::SmallInput,
        )
    });
    let state = store
        .source_state("e1/catalogue")
        .expect("read")
        .expect("exists");
    g.bench_function("put_source_state (unchanged check)", |b| {
        b.iter(|| {
            store
                .put_source_state("e1/catalogue", black_box(&state))
                .expect("put")
        })
    });
    g.bench_function("source_state + latest_snapshot (start of a check)", |b| {
        b.iter(|| {
            black_box(store.source_state("e1/catalogue").expect("read"));
            black_box(store.latest_snapshot("e1/catalogue").expect("read"))
        })
    });
    g.finish();
}

fn common_spec() -> (pivotwatch::extract::HtmlSpec, ()) {
    let (cat, _) = common::specs();
    match &*cat.spec {
        pivotwatch::extract::ExtractSpec::Html(h) => (h.clone(), ()),
        _ => panic!("html spec"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
