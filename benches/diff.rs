//! Diff of two 10k-item catalogues (1 % of prices changed, 0.5 % of rows
//! removed, 0.5 % added), and the "same?" test on two equal ones, which is
//! what every changed-body check runs first.
//!
//! `cargo bench --bench diff`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pivotwatch::diff::{diff, same};
use pivotwatch::extract::insert_items;
use pivotwatch::record::{Item, Record};

fn item(i: usize, price: &str) -> Item {
    let part = format!("TMS{i:05}-PGF{}", i % 7);
    Item {
        key: pivotwatch::extract::item_key(Some(&part), None).expect("key"),
        name: Some(format!(
            "Component {i}, 32-bit MCU / DSP, LQFP-{}",
            48 + i % 100
        )),
        manufacturer: Some(["Texas Instruments", "Yageo", "Murata", "NXP"][i % 4].to_string()),
        part_number: Some(part.clone()),
        price: Some(price.to_string()),
        link: Some(format!("https://shop.example.org/p/{part}")),
        extra: [("stock".to_string(), format!("{}", i * 37 % 5000))].into(),
    }
}

fn catalogue(n: usize, changed: bool) -> Record {
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        if changed && i % 200 == 0 {
            continue; // 0.5 % removed
        }
        let price = if changed && i % 100 == 1 {
            format!("{}.99", i % 300 + 1)
        } else {
            format!("{}.50", i % 300)
        };
        items.push(item(i, &price));
    }
    if changed {
        for i in 0..n / 200 {
            items.push(item(n + i, "9.99")); // 0.5 % added
        }
    }
    let mut r = Record::default();
    insert_items(&mut r, items);
    r
}

fn bench(c: &mut Criterion) {
    let a = catalogue(10_000, false);
    let a2 = a.clone();
    let b = catalogue(10_000, true);
    assert_eq!(diff(&a, &b).len(), 50 + 100 + 50);
    let mut g = c.benchmark_group("catalogue 10k items");
    g.sample_size(20);
    g.bench_function("diff (200 changes)", |bn| {
        bn.iter(|| black_box(diff(black_box(&a), black_box(&b))))
    });
    g.bench_function("same (equal records)", |bn| {
        bn.iter(|| black_box(same(black_box(&a), black_box(&a2))))
    });
    g.bench_function("insert_items (key + group 10k rows)", |bn| {
        let items: Vec<Item> = a.items.values().cloned().collect();
        bn.iter_batched(
            || items.clone(),
            |items| {
                let mut r = Record::default();
                insert_items(&mut r, black_box(items));
                black_box(r)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
