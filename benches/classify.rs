//! Classification of 10k catalogue items with the embedded reference data
//! (brand column, part-number patterns, product words), and the one-off
//! cost of building the reference tables.
//!
//! `cargo bench --bench classify`

mod common;

use std::hint::black_box;

use common::pages::{Rng, WESTERN_PARTS};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pivotwatch::classify::Reference;

/// 10k rows as a catalogue shows them: 97 % baseline stock, 3 % Western
/// processors, brand spellings varied.
fn items() -> Vec<(String, String, String)> {
    let base: &[(&str, &str, &str)] = &[
        ("Yageo", "RC0603FR-0710KL", "Thick film resistor 0603 1%"),
        ("Murata", "GRM188R71H104KA93D", "MLCC 100 nF 50 V X7R"),
        ("GigaDevice", "GD32F103C8T6", "Cortex-M3 MCU 64 KB flash"),
        ("WCH", "CH340G", "USB to UART bridge"),
        ("Espressif", "ESP32-WROOM-32E", "Wi-Fi + BT module"),
        (
            "STMicroelectronics",
            "L7805CV",
            "Linear regulator 5 V 1.5 A",
        ),
        ("Vishay", "SI2302CDS-T1-GE3", "N-MOSFET 20 V 2.6 A"),
        ("", "SS34", "Schottky diode 40 V 3 A"),
        ("Hongfa", "HF115F/012-1ZS3", "Power relay 12 V 16 A"),
        ("Jiangsu Changjiang", "MMBT3904", "NPN transistor 40 V"),
    ];
    let mut r = Rng::from_label(&[&"classify"]);
    (0..10_000)
        .map(|i| {
            if r.chance(0.03) {
                let (m, p, d, _) = *r.pick(WESTERN_PARTS);
                let m = if i % 2 == 0 {
                    m.to_uppercase()
                } else {
                    m.to_string()
                };
                (m, p.to_string(), d.to_string())
            } else {
                let (m, p, d) = *r.pick(base);
                (
                    m.to_string(),
                    format!("{p}{}", ["", "-TR", " CT"][i % 3]),
                    d.to_string(),
                )
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let reference = Reference::embedded().expect("embedded reference data");
    let items = items();
    let mut g = c.benchmark_group("classify");
    g.sample_size(10);
    g.bench_function("Reference::embedded (build tables)", |b| {
        b.iter(|| black_box(Reference::embedded().expect("loads")))
    });
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("classify_item x10k", |b| {
        b.iter(|| {
            for (m, p, d) in &items {
                black_box(reference.classify_item(
                    Some(d),
                    (!m.is_empty()).then_some(m.as_str()),
                    Some(p),
                    &[],
                ));
            }
        })
    });
    // The worst text for the keyword matchers: every family keyword's and maker name's
    // first word, again and again, so each word starts candidates that then fail.
    let mut firsts: Vec<&str> = reference
        .families()
        .iter()
        .flat_map(|f| f.keywords.iter())
        .chain(reference.manufacturers().iter().map(|m| &m.canonical))
        .filter_map(|k| k.split_whitespace().next())
        .map(|w| w.trim_end_matches('*'))
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    let mut text = String::new();
    while text.len() < 1 << 20 {
        for w in &firsts {
            text.push_str(w);
            text.push(' ');
        }
    }
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("families_in_text, 1 MiB of first words", |b| {
        b.iter(|| black_box(reference.families_in_text(&text)))
    });
    g.bench_function("makers_in_text, 1 MiB of first words", |b| {
        b.iter(|| black_box(reference.makers_in_text(&text)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
