//! HTML extraction per page: the streaming path (`stream: …`, what a
//! check uses for these specs), the DOM path (`DOM path: …`), bare
//! html5ever parsing into scraper's DOM, and html5ever's tokenizer alone
//! (the floor of both), on the scale harness's pages. Targets: issue 6,
//! DOM parse + extract ≥ 70 % of bare-parse throughput; issue 16, selector
//! extraction ≥ 100 MB/s per core.
//!
//! `cargo bench --bench extract`
//!
//! Wall-clock figures are noisy on a shared 2-core machine, so the same
//! workloads also run alone, once over the 16+16 pages, for instruction
//! counts: `PW_ONLY=parse|tokenize|fasttok|extract|text|dom|domtext cargo bench --bench extract` (no
//! criterion; wrap the binary in `perf stat -e instructions:u` or
//! `valgrind --tool=callgrind`). `PW_REPEAT` repeats the pass (default 1);
//! `PW_KIND=catalogue|registry` reads one kind of page only.

mod common;

use criterion::{Criterion, Throughput, criterion_group};
use pivotwatch::extract::{ExtractSpec, HtmlField, HtmlSpec, extract_html, extract_html_dom};
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
        engine: Default::default(),
    }
    .prepared()
}

/// html5ever's tokenizer alone, into a sink that keeps nothing (switching
/// to raw text for `script` and `style` as the tree builder would): the
/// floor of any extractor built on it.
fn tokenize(text: &str) {
    use html5ever::tokenizer::{
        BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, states::RawKind,
    };
    struct Nop;
    impl TokenSink for Nop {
        type Handle = ();
        fn process_token(&self, t: Token, _: u64) -> TokenSinkResult<()> {
            if let Token::TagToken(tag) = &t
                && tag.kind == TagKind::StartTag
            {
                match &*tag.name {
                    "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
                    "style" => return TokenSinkResult::RawData(RawKind::Rawtext),
                    _ => {}
                }
            }
            black_box(&t);
            TokenSinkResult::Continue
        }
    }
    let tok = Tokenizer::new(Nop, Default::default());
    let q = BufferQueue::default();
    q.push_back(html5ever::tendril::StrTendril::from_slice(text));
    while !matches!(tok.feed(&q), html5ever::TokenizerResult::Done) {}
    tok.end();
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
        g.bench_function("bare tokenize (html5ever tokenizer, no sink)", |b| {
            b.iter(|| {
                for p in &pages {
                    tokenize(black_box(p));
                }
            })
        });
        g.bench_function("bare tokenize (byte-level tokenizer, no sink)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(pivotwatch::extract::token_count(black_box(p)).expect("tokenizes"));
                }
            })
        });
        g.bench_function("DOM path: parse + extract (watchlist spec)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(
                        extract_html_dom(spec, black_box(p), &base, &wall()).expect("extracts"),
                    );
                }
            })
        });
        g.bench_function("DOM path: parse + extract (whole body text)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(
                        extract_html_dom(&plain, black_box(p), &base, &wall()).expect("extracts"),
                    );
                }
            })
        });
        g.bench_function("stream: extract (watchlist spec)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(extract_html(spec, black_box(p), &base, &wall()).expect("extracts"));
                }
            })
        });
        g.bench_function("stream: extract (whole body text)", |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(
                        extract_html(&plain, black_box(p), &base, &wall()).expect("extracts"),
                    );
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

/// `PW_ONLY=parse|tokenize|fasttok|extract|text|dom|domtext|prescan|render`: one workload over every page, no
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
    if what == "diffdir" {
        return diff_dir();
    }
    let (cat, reg) = common::specs();
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let plain = plain_spec();
    let repeat: usize = std::env::var("PW_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // `PW_KIND=catalogue|registry`: one kind of page only.
    let kind_only = std::env::var("PW_KIND").ok();
    let mut bytes = 0usize;
    for (kind, name, source) in [(0, "catalogue", &cat), (1, "registry", &reg)] {
        if kind_only.as_deref().is_some_and(|k| k != name) {
            continue;
        }
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
                        black_box(
                            extract_html(spec, black_box(p), &base, &wall()).expect("extracts"),
                        );
                    }
                    "dom" => {
                        black_box(
                            extract_html_dom(spec, black_box(p), &base, &wall()).expect("extracts"),
                        );
                    }
                    "domtext" => {
                        black_box(
                            extract_html_dom(&plain, black_box(p), &base, &wall())
                                .expect("extracts"),
                        );
                    }
                    "tokenize" => tokenize(black_box(p)),
                    "fasttok" => {
                        black_box(
                            pivotwatch::extract::token_count(black_box(p)).expect("tokenizes"),
                        );
                    }
                    "text" => {
                        black_box(
                            extract_html(&plain, black_box(p), &base, &wall()).expect("extracts"),
                        );
                    }
                    "prescan" => {
                        black_box(pivotwatch::extract::limits::prescan(
                            black_box(p),
                            &pivotwatch::extract::limits::HTML_LIMITS,
                        ))
                        .expect("passes");
                    }
                    "render" => {}
                    other => {
                        panic!(
                            "PW_ONLY={other}: parse, tokenize, fasttok, extract, text, dom, domtext, prescan, render or sizes"
                        )
                    }
                }
            }
        }
    }
    eprintln!("{what}: {bytes} bytes");
}

/// Hostile pages under the default 8 MiB body cap (issue 10): the first
/// three once cost 22–80 s of CPU each in html5ever and the selectors.
/// The pre-scan (`extract::limits`) refuses them in milliseconds; the two
/// `allowed:` pages are the worst that pass it, and cost what a page can
/// cost at most.
fn hostile_pages() -> Vec<(&'static str, String)> {
    let mut attrs = String::from("<html><body><div");
    for i in 0..400_000 {
        attrs.push_str(&format!(" a{i}=x"));
    }
    attrs.push_str("></div></body></html>");
    vec![
        ("512 KB nested ul/li", "<ul><li>".repeat(512 * 1024 / 8)),
        ("100k nested div", "<div>".repeat(100_000)),
        ("400k attributes", attrs),
        ("100k unclosed b", "<b>x".repeat(100_000)),
        ("100k nested table", "<table><tr><td>".repeat(100_000)),
        ("600k empty spans", "<span></span>".repeat(600_000)),
        (
            "100k nested svg g",
            format!("<svg>{}</svg>", "<g>".repeat(100_000)),
        ),
        // The worst pages the pre-scan lets through: as many elements of
        // 256 attributes as fit in 8 MiB, and 500-deep nesting up to the
        // element limit.
        ("allowed: 256 attributes per element, 8 MiB", {
            let tag: String = std::iter::once("<i".to_string())
                .chain((0..256).map(|k| format!(" a{}", k % 26)))
                .chain(std::iter::once("></i>".to_string()))
                .collect();
            let mut page = String::from("<html><body>");
            while page.len() + tag.len() < 8 * 1024 * 1024 - 64 {
                page.push_str(&tag);
            }
            page
        }),
        (
            "allowed: 500 deep x 990",
            format!("{}{}", "<div>".repeat(500), "</div>".repeat(500)).repeat(990),
        ),
    ]
}

fn hostile(c: &mut Criterion) {
    let (cat, _) = common::specs();
    let ExtractSpec::Html(spec) = &*cat.spec else {
        panic!("html spec")
    };
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let mut g = c.benchmark_group("hostile page");
    g.sample_size(10);
    for (name, page) in hostile_pages() {
        g.throughput(Throughput::Bytes(page.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(extract_html(spec, black_box(&page), &base, &wall()).is_ok()))
        });
    }
    g.finish();
}

/// `PW_ONLY=diffdir PW_DIR=D`: both extractors over every `*.html` file
/// in `D` (e.g. the peer harness's fixture pages, saved with curl) with the
/// peer harness's selectors (`#products`, `#company-profile`) and the
/// whole body; panics at the first difference.
fn diff_dir() {
    let dir = std::env::var("PW_DIR").expect("PW_DIR");
    let field = |sel: &str| {
        HtmlSpec {
            fields: vec![(
                "content".into(),
                HtmlField::new(sel, None, false).expect("selector"),
            )],
            items: None,
            next_page: None,
            max_pages: 1,
            engine: Default::default(),
        }
        .prepared()
    };
    let specs = [field("#products"), field("#company-profile"), plain_spec()];
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let (mut pages, mut streamed) = (0, 0);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("utf-8 page");
        pages += 1;
        for spec in &specs {
            let dom = pivotwatch::extract::extract_html_dom(spec, &text, &base, &wall());
            match pivotwatch::extract::extract_html_stream(spec, &text, &base, &wall()) {
                Ok(Some(p)) => {
                    streamed += 1;
                    assert_eq!(dom.as_ref().ok(), Some(&p), "{}", path.display());
                }
                Ok(None) => {}
                Err(e) => {
                    streamed += 1;
                    assert_eq!(dom.as_ref().err(), Some(&e), "{}", path.display());
                }
            }
        }
    }
    eprintln!("{pages} pages x 3 specs: {streamed} streamed, all equal to the DOM path");
}

/// `PW_ONLY=hostile`: each hostile page once, with its wall time and the
/// outcome (no criterion; wrap in `/usr/bin/time -v` for the CPU).
fn hostile_once() {
    let (cat, _) = common::specs();
    let ExtractSpec::Html(spec) = &*cat.spec else {
        panic!("html spec")
    };
    let base = Url::parse("http://127.0.0.1:9/c/0.html").expect("url");
    let filter = std::env::var("PW_PAGE").ok();
    for (name, page) in hostile_pages() {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let t = std::time::Instant::now();
        let r = extract_html(spec, &page, &base, &wall());
        let outcome = match &r {
            Ok(_) => "extracted".to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "{name} ({} KB): {:.3} s: {}",
            page.len() / 1024,
            t.elapsed().as_secs_f64(),
            outcome.chars().take(160).collect::<String>()
        );
    }
}

criterion_group!(benches, bench, hostile);

fn main() {
    if let Ok(what) = std::env::var("PW_ONLY") {
        if what == "hostile" {
            hostile_once();
            return;
        }
        only(&what);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// A wall clock started now, for the parse time bound.
fn wall() -> impl Fn() -> std::time::Duration {
    let t = std::time::Instant::now();
    move || t.elapsed()
}
