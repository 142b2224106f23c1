//! Reference data and classification (`pivotwatch::classify`): items → manufacturer,
//! family, HS code, CHPL tier; activity codes and labels → sectors; data-file errors.
//!
//! The item and activity cases are a table, `tests/fixtures/classify_cases.toml`, run by
//! `classification_cases`, which reports every failing case with its line.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use toml::Spanned;

use pivotwatch::classify::{
    ActivityMatch, ActivityVia, ItemClass, MatchVia, RefDataError, Reference, Sector, Tier,
};

/// The shipped reference, loaded once for all tests.
fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| match Reference::embedded() {
        Ok(r) => r,
        Err(e) => panic!("shipped reference data must load:\n{e}"),
    })
}

fn item(name: Option<&str>, brand: Option<&str>, pn: Option<&str>) -> ItemClass {
    reference().classify_item(name, brand, pn, &[])
}

fn sectors(matches: &[ActivityMatch]) -> Vec<Sector> {
    let mut s: Vec<Sector> = matches.iter().map(|m| m.sector).collect();
    s.dedup();
    s
}

fn has_reason(c: &ItemClass, needle: &str) -> bool {
    c.reasons.iter().any(|r| r.contains(needle))
}

// ------------------------------------------------------------------------- reference data

#[test]
fn chpl_has_all_50_codes_with_tier_counts() {
    let r = reference();
    let all: Vec<_> = r.chpl_entries().collect();
    assert_eq!(all.len(), 50);
    let count = |t: Tier| all.iter().filter(|e| e.tier == t).count();
    assert_eq!(
        [
            Tier::T1,
            Tier::T2,
            Tier::T3A,
            Tier::T3B,
            Tier::T4A,
            Tier::T4B
        ]
        .map(count),
        [4, 5, 16, 9, 11, 5]
    );
}

#[test]
fn chpl_lookup_accepts_dotted_and_national_codes() {
    let r = reference();
    let e = r.chpl("8542.31").map(|e| (e.tier, e.hs_dotted()));
    assert_eq!(e, Some((Tier::T1, "8542.31".to_string())));
    assert_eq!(r.chpl("8542310001").map(|e| e.tier), Some(Tier::T1));
    assert_eq!(r.chpl("852691").map(|e| e.tier), Some(Tier::T2));
    assert_eq!(r.chpl("8504.40").map(|e| e.tier), Some(Tier::T3A));
    assert_eq!(r.chpl("848210").map(|e| e.tier), Some(Tier::T3B));
    assert_eq!(r.chpl("903020").map(|e| e.tier), Some(Tier::T4A));
    assert_eq!(r.chpl("8457.10").map(|e| e.tier), Some(Tier::T4B));
    assert_eq!(r.chpl("7204.49"), None, "ferrous scrap is not on the CHPL");
    assert_eq!(r.chpl("85"), None);
}

#[test]
fn tier_display_order_and_serde() {
    assert_eq!(Tier::T1.to_string(), "Tier 1");
    assert_eq!(Tier::T3A.to_string(), "Tier 3.A");
    assert!(Tier::T1 < Tier::T2 && Tier::T3B < Tier::T4A);
    assert!(Tier::T1.is_more_severe_than(Tier::T4B));
    assert_eq!(
        [Tier::T4B, Tier::T1, Tier::T3A].iter().min(),
        Some(&Tier::T1)
    );
    assert_eq!(
        serde_json::to_string(&Tier::T3A).ok().as_deref(),
        Some("\"3.A\"")
    );
    assert_eq!(
        serde_json::from_str::<Tier>("\"4.B\"").ok(),
        Some(Tier::T4B)
    );
    assert_eq!("Tier 2".parse::<Tier>().ok(), Some(Tier::T2));
    assert_eq!("3a".parse::<Tier>().ok(), Some(Tier::T3A));
    assert!("5".parse::<Tier>().is_err());
}

#[test]
fn sector_serde_snake_case_and_human_display() {
    assert_eq!(
        serde_json::to_string(&Sector::ScrapMetals).ok().as_deref(),
        Some("\"scrap_metals\"")
    );
    assert_eq!(
        serde_json::from_str::<Sector>("\"dual_use_machinery\"").ok(),
        Some(Sector::DualUseMachinery)
    );
    assert_eq!(Sector::ElectronicsTrade.to_string(), "electronics trade");
    assert!(Sector::ElectronicsManufacture.is_electronics());
    assert!(!Sector::ScrapMetals.is_electronics());
}

#[test]
fn manufacturers_cover_the_18_vendors_and_legacy_brands() {
    let r = reference();
    assert!(r.manufacturers().len() >= 18);
    for (name, country) in [
        ("Texas Instruments", "US"),
        ("Analog Devices", "US"),
        ("Intel", "US"),
        ("AMD", "US"),
        ("NXP Semiconductors", "NL"),
        ("STMicroelectronics", "CH"),
        ("Infineon Technologies", "DE"),
        ("Microchip Technology", "US"),
        ("onsemi", "US"),
        ("Renesas Electronics", "JP"),
        ("Lattice Semiconductor", "US"),
        ("Micron Technology", "US"),
        ("Samsung Electronics", "KR"),
        ("Vishay Intertechnology", "US"),
        ("u-blox", "CH"),
        ("Silicon Labs", "US"),
        ("Nordic Semiconductor", "NO"),
        ("Murata Manufacturing", "JP"),
    ] {
        let m = r.manufacturer(name).map(|m| m.country.as_str());
        assert_eq!(m, Some(country), "{name}");
    }
    for (legacy, owner) in [
        ("Altera", "Intel"),
        ("Xilinx", "AMD"),
        ("Linear Technology", "Analog Devices"),
        ("Maxim", "Analog Devices"),
        ("Burr-Brown", "Texas Instruments"),
        ("National Semiconductor", "Texas Instruments"),
        ("Freescale", "NXP Semiconductors"),
        ("Atmel", "Microchip Technology"),
        ("Cypress", "Infineon Technologies"),
        ("International Rectifier", "Infineon Technologies"),
        ("Fairchild", "onsemi"),
        ("Intersil", "Renesas Electronics"),
    ] {
        let m = r.manufacturer(legacy).map(|m| m.canonical.as_str());
        assert_eq!(m, Some(owner), "legacy brand {legacy}");
    }
}

#[test]
fn every_family_hs_code_is_six_digits_and_chip_families_are_tier_1() {
    let r = reference();
    for f in r.families() {
        assert_eq!(f.hs6.len(), 6, "{}", f.id);
    }
    for id in ["mcu", "dsp", "cpu", "fpga", "memory", "amplifier"] {
        let hs = r.family(id).map(|f| f.hs6.clone()).unwrap_or_default();
        assert_eq!(r.chpl(&hs).map(|e| e.tier), Some(Tier::T1), "{id}");
    }
}

// --------------------------------------------------------------------------------- items

#[test]
fn shared_prefix_without_brand_gets_lower_confidence_or_no_maker() {
    let with_brand = item(None, Some("Texas Instruments"), Some("LM317"));
    let bare = item(None, None, Some("LM317"));
    // An industry-standard number names no maker by itself (issue #12): the family and
    // tier hold, the maker needs a brand.
    assert_eq!(bare.manufacturer.as_deref(), None, "{:?}", bare.reasons);
    assert_eq!(bare.chpl_tier, Some(Tier::T1));
    assert!(
        bare.confidence < with_brand.confidence - 0.2,
        "{} vs {}",
        bare.confidence,
        with_brand.confidence
    );
    assert!(has_reason(&bare, "also used by other vendors"));
    // MC34063 is an onsemi and an NXP (Motorola) number alike: maker left open.
    let c = item(None, None, Some("MC34063"));
    assert_eq!(c.manufacturer, None, "{:?}", c.reasons);
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    assert!(has_reason(&c, "manufacturer left open"));
}

#[test]
fn item_class_serialises_to_json() {
    let c = item(None, Some("Xilinx"), Some("XC7A35T"));
    let json = serde_json::to_value(&c).unwrap_or_default();
    assert_eq!(json["manufacturer"], "AMD");
    assert_eq!(json["manufacturer_via"], "brand");
    assert_eq!(json["hs_code"], "8542.39");
    assert_eq!(json["chpl_tier"], "1");
    let back: ItemClass = serde_json::from_value(json).unwrap_or_default();
    assert_eq!(back, c);
}

#[test]
fn ten_thousand_items_classify_quickly() {
    let r = reference();
    let start = std::time::Instant::now();
    let mut tier1 = 0;
    for i in 0..10_000 {
        let c = match i % 4 {
            0 => r.classify_item(
                Some("DSP"),
                Some("TI"),
                Some("TMS320F28335"),
                &["page text"],
            ),
            1 => r.classify_item(Some("Ferraille E3"), None, None, &[]),
            2 => r.classify_item(Some("Микроконтроллер STM32F407"), None, None, &[]),
            _ => r.classify_item(
                Some("Condensateur céramique"),
                Some("Murata"),
                Some("GRM188"),
                &[],
            ),
        };
        if c.chpl_tier == Some(Tier::T1) {
            tier1 += 1;
        }
    }
    assert_eq!(tier1, 5_000);
    // Generous bound for unoptimised test builds; a release build takes a fraction of this.
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
}

#[test]
fn reference_is_send_sync_and_shared_by_arc() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Reference>();
    let shared = Arc::new(match Reference::embedded() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    });
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let r = Arc::clone(&shared);
            std::thread::spawn(move || {
                r.classify_item(None, None, Some("M430F1611"), &[])
                    .manufacturer
            })
        })
        .collect();
    for h in handles {
        assert_eq!(
            h.join().ok().flatten().as_deref(),
            Some("Texas Instruments")
        );
    }
}

// ------------------------------------------------------------- the case table

/// The item and activity cases (`tests/fixtures/classify_cases.toml`, which
/// documents its keys).
const CASES_PATH: &str = "tests/fixtures/classify_cases.toml";
const ROWS_PATH: &str = "tests/fixtures/item_cases.csv";
const ROWS: &str = include_str!("../fixtures/item_cases.csv");

/// One row of `item_cases.csv`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowCase {
    case: String,
    name: String,
    brand: String,
    part: String,
    description: String,
    maker: String,
    family: String,
    hs: String,
    tier: String,
    controlled: String,
}

/// Maker attribution over the rows: (true positives, false positives, false negatives).
#[derive(Default)]
struct MakerScore {
    tp: usize,
    fp: usize,
    fn_: usize,
}

/// Checks every row of the CSV case table; returns the report lines, the rows per family
/// and the maker score.
fn check_rows(r: &Reference) -> (usize, Vec<String>, BTreeMap<String, usize>, MakerScore) {
    let opt = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
    let mut rdr = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(ROWS.as_bytes());
    let mut report = Vec::new();
    let mut per_family: BTreeMap<String, usize> = BTreeMap::new();
    let mut score = MakerScore::default();
    let mut run = 0;
    for rec in rdr.deserialize::<RowCase>() {
        run += 1;
        let c = match rec {
            Ok(c) => c,
            Err(e) => {
                report.push(format!("{ROWS_PATH}: {e}"));
                continue;
            }
        };
        let desc = opt(&c.description);
        let extra: Vec<&str> = desc.iter().map(String::as_str).collect();
        let got = r.classify_item(
            opt(&c.name).as_deref(),
            opt(&c.brand).as_deref(),
            opt(&c.part).as_deref(),
            &extra,
        );
        let v = got.verdict(0.5);
        let want_maker = opt(&c.maker);
        match (&want_maker, &v.maker) {
            (Some(w), Some(g)) if w == g => score.tp += 1,
            (Some(_), Some(_)) => {
                score.fp += 1;
                score.fn_ += 1;
            }
            (Some(_), None) => score.fn_ += 1,
            (None, Some(_)) => score.fp += 1,
            (None, None) => {}
        }
        *per_family
            .entry(opt(&c.family).unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        let mut fails = Vec::new();
        let mut check = |what: &str, want: Option<String>, have: Option<String>| {
            if want != have {
                fails.push(format!("{what}: want {want:?}, got {have:?}"));
            }
        };
        check("maker", want_maker, v.maker.clone());
        check("family", opt(&c.family), got.family.clone());
        check("hs", opt(&c.hs), got.hs_code.clone());
        check(
            "tier",
            opt(&c.tier),
            got.chpl_tier.map(|t| t.as_str().to_string()),
        );
        check(
            "controlled",
            Some(c.controlled.clone()),
            Some(if v.controlled { "yes" } else { "no" }.to_string()),
        );
        if !fails.is_empty() {
            report.push(format!(
                "{ROWS_PATH}: row {} '{}' ({:?} / {:?} / {:?} / {:?}):\n    {}\n    reasons: {:?}",
                run + 1,
                c.case,
                c.name,
                c.brand,
                c.part,
                c.description,
                fails.join("\n    "),
                got.reasons
            ));
        }
    }
    (run, report, per_family, score)
}
const CASES: &str = include_str!("../fixtures/classify_cases.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    #[serde(default)]
    item: Vec<Spanned<ItemCase>>,
    #[serde(default)]
    activity: Vec<Spanned<ActivityCase>>,
}

/// A field of [`ItemClass`] that a case expects to be empty.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ItemField {
    Manufacturer,
    ManufacturerCountry,
    ManufacturerVia,
    LegacyBrand,
    Family,
    HsCode,
    ChplTier,
    PartNumber,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemCase {
    case: String,
    name: Option<String>,
    brand: Option<String>,
    part: Option<String>,
    #[serde(default)]
    text: Vec<String>,
    manufacturer: Option<String>,
    manufacturer_country: Option<String>,
    manufacturer_via: Option<MatchVia>,
    legacy_brand: Option<String>,
    family: Option<String>,
    hs_code: Option<String>,
    chpl_tier: Option<Tier>,
    part_number: Option<String>,
    #[serde(default)]
    none: Vec<ItemField>,
    confidence: Option<f32>,
    confidence_at_least: Option<f32>,
    confidence_above: Option<f32>,
    confidence_below: Option<f32>,
    #[serde(default)]
    reasons: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityCase {
    case: String,
    input: String,
    count: Option<usize>,
    count_at_least: Option<usize>,
    sectors: Option<Vec<Sector>>,
    sectors_include: Option<Sector>,
    any_key: Option<String>,
    all_via: Option<ActivityVia>,
    first: Option<FirstMatch>,
}

/// What the best activity match must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstMatch {
    scheme: Option<String>,
    code: Option<String>,
    label: Option<String>,
    sector: Option<Sector>,
    via: Option<ActivityVia>,
    key: Option<String>,
}

/// The case table, refused when it has an unknown key, no item or activity
/// case, or a case that expects nothing (each would let cases go unchecked).
fn parse_cases(text: &str) -> Result<Cases, String> {
    let cases: Cases = toml::from_str(text).map_err(|e| e.to_string())?;
    if cases.item.is_empty() || cases.activity.is_empty() {
        return Err(format!(
            "{} item and {} activity cases: both tables must have cases",
            cases.item.len(),
            cases.activity.len()
        ));
    }
    for c in &cases.item {
        let i = c.get_ref();
        let expects = [
            i.manufacturer.is_some(),
            i.manufacturer_country.is_some(),
            i.manufacturer_via.is_some(),
            i.legacy_brand.is_some(),
            i.family.is_some(),
            i.hs_code.is_some(),
            i.chpl_tier.is_some(),
            i.part_number.is_some(),
            !i.none.is_empty(),
            i.confidence.is_some(),
            i.confidence_at_least.is_some(),
            i.confidence_above.is_some(),
            i.confidence_below.is_some(),
            !i.reasons.is_empty(),
        ];
        if !expects.contains(&true) {
            return Err(format!(
                "line {}: item case '{}' expects nothing",
                line_of(text, c.span().start),
                i.case
            ));
        }
    }
    for c in &cases.activity {
        let a = c.get_ref();
        let first = a.first.as_ref().is_some_and(|f| {
            [
                f.scheme.is_some(),
                f.code.is_some(),
                f.label.is_some(),
                f.sector.is_some(),
                f.via.is_some(),
                f.key.is_some(),
            ]
            .contains(&true)
        });
        let expects = [
            a.count.is_some(),
            a.count_at_least.is_some(),
            a.sectors.is_some(),
            a.sectors_include.is_some(),
            a.any_key.is_some(),
            a.all_via.is_some(),
            first,
        ];
        if !expects.contains(&true) {
            return Err(format!(
                "line {}: activity case '{}' expects nothing",
                line_of(text, c.span().start),
                a.case
            ));
        }
    }
    Ok(cases)
}

/// The 1-based line of a byte offset of the case table.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Compares one expected value; a mismatch is added to `fails`.
fn expect<T: PartialEq + std::fmt::Debug>(
    fails: &mut Vec<String>,
    what: &str,
    want: Option<T>,
    got: Option<T>,
) {
    if let Some(want) = want.filter(|w| got.as_ref() != Some(w)) {
        fails.push(format!("{what}: want {want:?}, got {got:?}"));
    }
}

/// What is wrong with the classification of one item (empty: nothing).
fn check_item(r: &Reference, case: &ItemCase) -> Vec<String> {
    let text: Vec<&str> = case.text.iter().map(String::as_str).collect();
    let c = r.classify_item(
        case.name.as_deref(),
        case.brand.as_deref(),
        case.part.as_deref(),
        &text,
    );
    let mut fails = Vec::new();
    let f = &mut fails;
    expect(
        f,
        "manufacturer",
        case.manufacturer.as_deref(),
        c.manufacturer.as_deref(),
    );
    expect(
        f,
        "manufacturer_country",
        case.manufacturer_country.as_deref(),
        c.manufacturer_country.as_deref(),
    );
    expect(
        f,
        "manufacturer_via",
        case.manufacturer_via,
        c.manufacturer_via,
    );
    expect(
        f,
        "legacy_brand",
        case.legacy_brand.as_deref(),
        c.legacy_brand.as_deref(),
    );
    expect(f, "family", case.family.as_deref(), c.family.as_deref());
    expect(f, "hs_code", case.hs_code.as_deref(), c.hs_code.as_deref());
    expect(f, "chpl_tier", case.chpl_tier, c.chpl_tier);
    expect(
        f,
        "part_number",
        case.part_number.as_deref(),
        c.part_number.as_deref(),
    );
    for field in &case.none {
        let got = match field {
            ItemField::Manufacturer => c.manufacturer.clone(),
            ItemField::ManufacturerCountry => c.manufacturer_country.clone(),
            ItemField::ManufacturerVia => c.manufacturer_via.map(|v| v.to_string()),
            ItemField::LegacyBrand => c.legacy_brand.clone(),
            ItemField::Family => c.family.clone(),
            ItemField::HsCode => c.hs_code.clone(),
            ItemField::ChplTier => c.chpl_tier.map(|t| t.to_string()),
            ItemField::PartNumber => c.part_number.clone(),
        };
        if let Some(got) = got {
            f.push(format!("{field:?}: want none, got {got:?}"));
        }
    }
    if let Some(want) = case.confidence.filter(|&w| c.confidence != w) {
        f.push(format!("confidence: want {want}, got {}", c.confidence));
    }
    if let Some(min) = case.confidence_at_least.filter(|&min| c.confidence < min) {
        f.push(format!("confidence: want >= {min}, got {}", c.confidence));
    }
    if let Some(min) = case.confidence_above.filter(|&min| c.confidence <= min) {
        f.push(format!("confidence: want > {min}, got {}", c.confidence));
    }
    if let Some(max) = case.confidence_below.filter(|&max| c.confidence >= max) {
        f.push(format!("confidence: want < {max}, got {}", c.confidence));
    }
    for needle in &case.reasons {
        if !has_reason(&c, needle) {
            f.push(format!("reasons: none contains {needle:?}"));
        }
    }
    if !fails.is_empty() {
        fails.push(format!("reasons given: {:?}", c.reasons));
    }
    fails
}

/// What is wrong with the classification of one activity (empty: nothing).
fn check_activity(r: &Reference, case: &ActivityCase) -> Vec<String> {
    let m = r.classify_activity(&case.input);
    let mut fails = Vec::new();
    let f = &mut fails;
    expect(f, "count", case.count, Some(m.len()));
    if let Some(min) = case.count_at_least.filter(|&min| m.len() < min) {
        f.push(format!("count: want >= {min}, got {}", m.len()));
    }
    expect(f, "sectors", case.sectors.clone(), Some(sectors(&m)));
    if let Some(s) = case.sectors_include.filter(|s| !sectors(&m).contains(s)) {
        f.push(format!("sectors: want {s:?} among them"));
    }
    if let Some(key) = case
        .any_key
        .as_ref()
        .filter(|key| !m.iter().any(|x| x.key() == **key))
    {
        f.push(format!("no match is {key}"));
    }
    if let Some(via) = case.all_via.filter(|&via| !m.iter().all(|x| x.via == via)) {
        f.push(format!("not every match is via {via:?}"));
    }
    if let Some(want) = &case.first {
        match m.first() {
            None => f.push("first: want a match, got none".to_string()),
            Some(first) => {
                expect(
                    f,
                    "first.scheme",
                    want.scheme.as_deref(),
                    Some(first.scheme.as_str()),
                );
                expect(
                    f,
                    "first.code",
                    want.code.as_deref(),
                    Some(first.code.as_str()),
                );
                expect(
                    f,
                    "first.label",
                    want.label.as_deref(),
                    Some(first.label.as_str()),
                );
                expect(f, "first.sector", want.sector, Some(first.sector));
                expect(f, "first.via", want.via, Some(first.via));
                expect(f, "first.key", want.key.clone(), Some(first.key()));
            }
        }
    }
    if !fails.is_empty() {
        fails.push(format!("matches: {m:?}"));
    }
    fails
}

#[test]
fn classification_cases() {
    let cases = match parse_cases(CASES) {
        Ok(c) => c,
        Err(e) => panic!("{CASES_PATH}: {e}"),
    };
    let r = reference();
    let mut report = Vec::new();
    let mut run = 0;
    for c in &cases.item {
        run += 1;
        let fails = check_item(r, c.get_ref());
        if !fails.is_empty() {
            let line = line_of(CASES, c.span().start);
            report.push(format!(
                "{CASES_PATH}:{line}: item '{}':\n    {}",
                c.get_ref().case,
                fails.join("\n    ")
            ));
        }
    }
    for c in &cases.activity {
        run += 1;
        let fails = check_activity(r, c.get_ref());
        if !fails.is_empty() {
            let line = line_of(CASES, c.span().start);
            report.push(format!(
                "{CASES_PATH}:{line}: activity '{}':\n    {}",
                c.get_ref().case,
                fails.join("\n    ")
            ));
        }
    }
    // The row table (item_cases.csv), by the same driver.
    let (rows, row_report, per_family, score) = check_rows(r);
    run += rows;
    report.extend(row_report);
    let precision = score.tp as f64 / (score.tp + score.fp).max(1) as f64;
    let recall = score.tp as f64 / (score.tp + score.fn_).max(1) as f64;
    println!(
        "item rows: {rows}; maker attribution precision {precision:.3}, recall {recall:.3} ({} right, {} wrong or extra, {} missed); rows per family: {}",
        score.tp,
        score.fp,
        score.fn_,
        per_family
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        report.is_empty(),
        "{} of {run} cases failed:\n{}",
        report.len(),
        report.join("\n")
    );
    assert!(rows >= 400, "the row table lost rows: {rows}");
    // The table as it stands: a lost case shows here.
    assert_eq!((cases.item.len(), cases.activity.len()), (63, 26));
}

#[test]
fn the_case_table_refuses_unknown_keys_empty_tables_and_empty_cases() {
    let one_activity = "[[activity]]\ncase = \"a\"\ninput = \"46.77\"\ncount = 1\n";
    let err = parse_cases(&format!(
        "[[item]]\ncase = \"x\"\nname = \"DSP\"\nmanufactuer = \"TI\"\n{one_activity}"
    ))
    .err()
    .unwrap_or_default();
    assert!(err.contains("manufactuer"), "{err}");
    let err = parse_cases(one_activity).err().unwrap_or_default();
    assert!(err.contains("0 item and 1 activity cases"), "{err}");
    let err = parse_cases("").err().unwrap_or_default();
    assert!(err.contains("0 item and 0 activity"), "{err}");
    let err = parse_cases(&format!(
        "[[item]]\ncase = \"x\"\nname = \"DSP\"\n{one_activity}"
    ))
    .err()
    .unwrap_or_default();
    assert!(
        err.contains("line 1: item case 'x' expects nothing"),
        "{err}"
    );
    let err = parse_cases(
        "[[item]]\ncase = \"x\"\nfamily = \"dsp\"\n[[activity]]\ncase = \"b\"\ninput = \"x\"\nfirst = {}\n",
    )
    .err()
    .unwrap_or_default();
    assert!(
        err.contains("line 4: activity case 'b' expects nothing"),
        "{err}"
    );
    let err = parse_cases(&format!(
        "[[item]]\ncase = \"x\"\nnone = [\"colour\"]\n{one_activity}"
    ))
    .err()
    .unwrap_or_default();
    assert!(err.contains("colour"), "{err}");
}

// ------------------------------------------------------------------------ data-file errors

fn write(dir: &std::path::Path, name: &str, text: &str) {
    if let Err(e) = std::fs::write(dir.join(name), text) {
        panic!("cannot write {name}: {e}");
    }
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

#[test]
fn invalid_csv_row_names_path_and_line() {
    let dir = tempdir();
    write(
        dir.path(),
        "chpl.csv",
        "# analyst additions\nhs6,tier,description\n854231,1,Processors\n854290,7,Parts of ICs\n",
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("tier 7 must be rejected"),
        Err(e) => e,
    };
    let text = err.to_string();
    let want = format!("{}:4:", dir.path().join("chpl.csv").display());
    assert!(text.starts_with(&want), "{text}");
    assert!(text.contains("unknown CHPL tier '7'"), "{text}");
    assert!(
        matches!(
            err,
            RefDataError::Invalid {
                line: 4,
                column: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn csv_quote_errors_name_path_and_line() {
    let dir = tempdir();
    write(
        dir.path(),
        "activity_codes.csv",
        "scheme,code,sector,label_en,label_fr,keywords,note\n\
         # an analyst's rows\n\
         NACE,47.79,scrap_metals,\"Retail sale, second-hand goods,,,\n\
         NACE,47.78,scrap_metals,19\" racks,,,\n\
         NACE,47.77,scrap_metals,\"Retail\" sale,,,\n\
         NACE,47.76,scrap_metals,Retail sale,,,\n",
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("quote errors must be rejected"),
        Err(e) => e,
    };
    let path = dir.path().join("activity_codes.csv").display().to_string();
    let lines: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            format!("{path}:3: unclosed quote (a field cannot span lines)"),
            format!(
                "{path}:4: a quote inside an unquoted field (quote the whole field and double the inner quotes)"
            ),
            format!(
                "{path}:5: text after a closing quote (double the quotes inside a quoted field)"
            ),
        ]
    );
    assert!(
        err.errors()
            .iter()
            .all(|e| matches!(e, RefDataError::Syntax { column: None, .. })),
        "{err:?}"
    );
}

#[test]
fn invalid_toml_entries_name_path_line_and_column() {
    let dir = tempdir();
    write(
        dir.path(),
        "manufacturers.toml",
        r#"# analyst additions
[[manufacturer]]
canonical = "Acme Semiconductor"
country = "US"
aliases = ["Acme"]

[[manufacturer.pattern]]
pattern = 'ACM(\d'
family = "mcu"

[[manufacturer.pattern]]
pattern = 'ACX\d'
family = "widget"
"#,
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("a bad regex and an unknown family must be rejected"),
        Err(e) => e,
    };
    let path = dir.path().join("manufacturers.toml").display().to_string();
    let lines: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{path}:8:11: invalid regex")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("{path}:13:10: unknown family 'widget'")),
        "{lines:?}"
    );
}

#[test]
fn toml_syntax_error_and_unknown_key_have_locations() {
    let dir = tempdir();
    write(
        dir.path(),
        "families.toml",
        "[[family]]\nid = \"widget\"\nhs6 = \"854239\"\ncolour = \"red\"\n",
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("unknown key must be rejected"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:4:1:",
            dir.path().join("families.toml").display()
        )),
        "{text}"
    );
    assert!(text.contains("colour"), "{text}");
    assert!(matches!(
        err,
        RefDataError::Syntax {
            line: 4,
            column: Some(1),
            ..
        }
    ));
}

#[test]
fn alias_claimed_by_two_manufacturers_is_an_error() {
    let dir = tempdir();
    write(
        dir.path(),
        "manufacturers.toml",
        "[[manufacturer]]\ncanonical = \"Acme\"\ncountry = \"US\"\naliases = [\"Xilinx\"]\n",
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("duplicate alias must be rejected"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.contains("manufacturers.toml:4:"), "{text}");
    assert!(text.contains("already used by AMD"), "{text}");
}

#[test]
fn every_error_of_every_file_is_reported() {
    let dir = tempdir();
    write(
        dir.path(),
        "chpl.csv",
        "hs6,tier,description\n85423,1,Too short\n",
    );
    write(
        dir.path(),
        "activity_codes.csv",
        "scheme,code,sector,label_en,label_fr,keywords,note\nNACE,46.77,scrapyard,Wholesale of waste and scrap,,,\n",
    );
    let err = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(_) => panic!("two bad files"),
        Err(e) => e,
    };
    let lines: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("chpl.csv:2: hs6 '85423'"), "{lines:?}");
    assert!(
        lines[1].contains("activity_codes.csv:2: unknown sector 'scrapyard'"),
        "{lines:?}"
    );
}

#[test]
fn missing_settings_directory_is_an_error() {
    let dir = tempdir();
    let missing = dir.path().join("nope");
    let err = pivotwatch::config::load_reference(Some(&missing)).err();
    assert!(matches!(err, Some(RefDataError::Read { .. })), "{err:?}");
}

#[test]
fn settings_directory_adds_and_overrides_entries() {
    let dir = tempdir();
    write(
        dir.path(),
        "chpl.csv",
        "hs6,tier,description\n853221,1,Tantalum capacitors (raised by the analyst)\n",
    );
    write(
        dir.path(),
        "activity_codes.csv",
        "scheme,code,sector,label_en,label_fr,keywords,note\nNACE,47.79,scrap_metals,Retail sale of second-hand goods in stores,Commerce de détail de biens d'occasion en magasin,brocante,analyst\n",
    );
    write(
        dir.path(),
        "families.toml",
        "[[family]]\nid = \"fpga\"\nextend = true\nkeywords = [\"matrice logique\"]\n",
    );
    write(
        dir.path(),
        "manufacturers.toml",
        r#"
[[manufacturer]]
canonical = "Acme Semiconductor"
country = "FR"
aliases = ["Acme Semi"]
[[manufacturer.pattern]]
pattern = 'ACM\d{3}'
family = "mcu"

[[manufacturer]]
canonical = "Texas Instruments"
extend = true
aliases = ["Texas Instruments Deutschland"]
"#,
    );
    let r = match pivotwatch::config::load_reference(Some(dir.path())) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.chpl("853221").map(|e| e.tier), Some(Tier::T1));
    assert_eq!(r.chpl_entries().count(), 50);
    let m = r.classify_activity("NACE:47.79");
    assert_eq!(sectors(&m), vec![Sector::ScrapMetals]);
    let c = r.classify_item(Some("Matrice logique"), None, None, &[]);
    assert_eq!(c.family.as_deref(), Some("fpga"));
    let c = r.classify_item(None, None, Some("ACM123"), &[]);
    assert_eq!(c.manufacturer.as_deref(), Some("Acme Semiconductor"));
    assert_eq!(c.manufacturer_country.as_deref(), Some("FR"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    let c = r.classify_item(
        None,
        Some("Texas Instruments Deutschland GmbH"),
        Some("TMS320F28335"),
        &[],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    // The shipped TI aliases and patterns are still there.
    let c = r.classify_item(None, Some("T.I."), Some("M430F1611"), &[]);
    assert_eq!(c.family.as_deref(), Some("mcu"));
}

/// Every HS-6 code of the CHPL is reachable from catalogue text: some family has the code,
/// and one of its own keywords, written as a catalogue would, classifies to it.
#[test]
fn every_chpl_code_is_reachable_from_text() {
    let r = reference();
    let mut missing = Vec::new();
    for e in r.chpl_entries() {
        let fams: Vec<_> = r.families().iter().filter(|f| f.hs6 == e.hs6).collect();
        let reached = fams.iter().any(|f| {
            f.keywords.iter().any(|k| {
                let text = k.trim_end_matches('*');
                let c = r.classify_item(Some(text), None, None, &[]);
                c.hs_code.as_deref() == Some(e.hs_dotted().as_str())
                    && c.chpl_tier == Some(e.tier)
                    && c.verdict(0.5).controlled
            })
        });
        if !reached {
            missing.push(format!("{} ({})", e.hs_dotted(), e.description));
        }
    }
    assert!(
        missing.is_empty(),
        "CHPL codes no text reaches: {}",
        missing.join("; ")
    );
}

/// The maker list is broad: several hundred makers, every maker issue #12 names, and the
/// second sources marked as such.
#[test]
fn makers_cover_distributor_brands_and_mark_second_sources() {
    let r = reference();
    assert!(
        r.manufacturers().len() >= 300,
        "{}",
        r.manufacturers().len()
    );
    for (brand, canonical, coalition) in [
        ("Diodes Inc", "Diodes Incorporated", true),
        ("MCC", "Micro Commercial Components", true),
        ("Diotec", "Diotec Semiconductor", true),
        ("Taiwan Semiconductor", "Taiwan Semiconductor", true),
        ("Central", "Central Semiconductor", true),
        ("Rectron", "Rectron", true),
        ("Nexperia", "Nexperia", true),
        ("Rohm", "Rohm Semiconductor", true),
        ("Toshiba", "Toshiba", true),
        ("Renesas", "Renesas Electronics", true),
        ("Panasonic", "Panasonic", true),
        ("Murata", "Murata Manufacturing", true),
        ("TDK", "TDK", true),
        ("Kemet", "KEMET", true),
        ("Yageo", "Yageo", true),
        ("Amphenol", "Amphenol", true),
        ("TE Connectivity", "TE Connectivity", true),
        ("Molex", "Molex", true),
        ("Glenair", "Glenair", true),
        ("Harting", "HARTING", true),
        ("Wurth Elektronik", "Würth Elektronik", true),
        ("DC Components", "DC Components", true),
        ("Multicomp", "Multicomp", true),
        ("Magnatec", "Magnatec", true),
        ("HTC Korea", "HTC Korea", true),
        ("Kamami", "Kamami", true),
        ("Crowd Supply", "Crowd Supply", true),
        ("HGSEMI", "HGSEMI", false),
        ("UMW", "UMW", false),
        ("CJ", "JCET", false),
        ("HXY", "HXY MOSFET", false),
        ("UTC", "Unisonic Technologies", false),
        ("Slkor", "Slkor", false),
        ("JSMicro", "JSMicro", false),
        ("Hottech", "Hottech", false),
        ("YOUTAI", "UMW", false),
        ("COREBAI", "COREBAI", false),
        ("RUME", "RUME", false),
        ("ZH", "ZH", false),
        ("Siproin", "Siproin", false),
        ("Tech Public", "Tech Public", false),
        ("CDIL", "CDIL", false),
    ] {
        let m = r.manufacturer(brand);
        assert_eq!(
            m.map(|m| (m.canonical.as_str(), m.coalition)),
            Some((canonical, coalition)),
            "{brand}"
        );
    }
    // The detailed entries keep their coalition status from their country.
    assert!(
        r.manufacturer("Texas Instruments")
            .is_some_and(|m| m.coalition)
    );
}

/// The free-text lookups other modules use (a site's own pages): makers by their
/// distinctive names, families by their words, and brand columns as the classifier reads
/// them.
#[test]
fn reference_finds_makers_and_families_in_free_text() {
    let r = reference();
    let makers: Vec<&str> = r
        .makers_in_text("Nous distribuons Texas Instruments, Amphenol et HGSEMI; stock TI et ST.")
        .iter()
        .map(|(m, _)| m.canonical.as_str())
        .collect();
    assert_eq!(makers, ["Texas Instruments", "Amphenol", "HGSEMI"]);
    let fams: Vec<&str> = r
        .families_in_text("Микроконтроллеры, разъёмы и Steckverbinder; memory cards")
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    assert!(
        fams.contains(&"mcu") && fams.contains(&"connector"),
        "{fams:?}"
    );
    assert!(!fams.contains(&"memory"), "{fams:?}");
    assert_eq!(
        r.brand("Texas Instrumen").map(|m| m.canonical.as_str()),
        Some("Texas Instruments")
    );
    assert_eq!(
        r.brand("UMW(Youtai Semiconductor)").map(|m| m.coalition),
        Some(false)
    );
    assert!(r.brand("N/A").is_none() && r.brand("Kiverco").is_none());
}
