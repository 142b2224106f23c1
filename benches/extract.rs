//! HTML parse + extract per page, against bare html5ever parsing (through
//! scraper's tree sink, the parse every extraction starts with) of the same
//! pages. Target (issue 6): parse + extract ≥ 70 % of bare-parse throughput.
//!
//! `cargo bench --bench extract`
//!
//! Wall-clock figures are noisy on a shared 2-core machine, so the same
//! workloads also run alone, once over the 16+16 pages, for instruction
//! counts: `PW_ONLY=parse|extract|text cargo bench --bench extract` (no
//! criterion; wrap the binary in `perf stat -e instructions:u` or
//! `valgrind --tool=callgrind`). `PW_REPEAT` repeats the pass (default 1).

mod common;

use criterion::{Criterion, Throughput, criterion_group};
use pivotwatch::extract::{ExtractSpec, HtmlField, HtmlSpec, extract_html};
use std::hint::black_box;
use url::Url;

/// The peers' "plain" mode: the text of `<body>`.
fn plain_spec() -> HtmlSpec {
    HtmlSpec {
        fields: vec![(
            "content".into(),
            HtmlField::new("body", None, false).expect("selector"),
        )],
        items: None,
        next_page: None,
        max_pages: 1,
    }
}

fn bench(c: &mut Criterion) {
    let (cat, reg) = common::specs();
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let plain = plain_spec();
    for (kind, name, source) in [(0, "catalogue", &cat), (1, "registry", &reg)] {
        let ExtractSpec::Html(spec) = &*source.spec else {
            panic!("html spec")
        };
        let pages = common::bodies(kind, 16);
        let bytes: usize = pages.iter().map(String::len).sum();
        let mut g = c.benchmark_group(format!("{name} x16 ({} KB)", bytes / 1024));
        g.throughput(Throughput::Bytes(bytes as u64));
        g.sample_size(20);
        g.bench_function("bare parse (html5ever via scraper)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(scraper::Html::parse_document(black_box(p)));
                }
            })
        });
        g.bench_function("parse + extract (watchlist spec)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(extract_html(spec, black_box(p), &base).expect("extracts"));
                }
            })
        });
        g.bench_function("parse + extract (whole body text)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(extract_html(&plain, black_box(p), &base).expect("extracts"));
                }
            })
        });
        g.bench_function("decode_body (charset sniff + UTF-8)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(pivotwatch::fetch::decode_body(
                        black_box(p.as_bytes()),
                        Some("text/html; charset=utf-8"),
                    ));
                }
            })
        });
        g.bench_function("blake3 body hash", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(pivotwatch::store::body_hash(black_box(p.as_bytes())));
                }
            })
        });
        g.finish();
    }
}

/// `PW_ONLY=parse|extract|text|render`: one workload over every page, no
/// criterion; `PW_ONLY=sizes` prints the page size range of 1000 pages.
fn only(what: &str) {
    if what == "sizes" {
        for (kind, name) in [(0, "catalogue"), (1, "registry")] {
            let sizes: Vec<usize> = common::bodies(kind, 1000).iter().map(String::len).collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            let mean = sizes.iter().sum::<usize>() / sizes.len().max(1);
            eprintln!("{name}: 1000 pages, bytes min {min:?} mean {mean} max {max:?}");
        }
        return;
    }
    let (cat, reg) = common::specs();
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let plain = plain_spec();
    let repeat: usize = std::env::var("PW_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut bytes = 0usize;
    for (kind, source) in [(0, &cat), (1, &reg)] {
        let ExtractSpec::Html(spec) = &*source.spec else {
            panic!("html spec")
        };
        let pages = common::bodies(kind, 16);
        for _ in 0..repeat {
            for p in &pages {
                bytes += p.len();
                match what {
                    "parse" => {
                        black_box(scraper::Html::parse_document(black_box(p)));
                    }
                    "extract" => {
                        black_box(extract_html(spec, black_box(p), &base).expect("extracts"));
                    }
                    "text" => {
                        black_box(extract_html(&plain, black_box(p), &base).expect("extracts"));
                    }
                    "render" => {}
                    other => panic!("PW_ONLY={other}: parse, extract, text, render or sizes"),
                }
            }
        }
    }
    eprintln!("{what}: {bytes} bytes");
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(what) = std::env::var("PW_ONLY") {
        only(&what);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
