//! Reference data and classification (`pivotwatch::classify`): items → manufacturer,
//! family, HS code, CHPL tier; activity codes and labels → sectors; data-file errors.

use std::sync::{Arc, OnceLock};

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
fn ti_dsp_tms320f28335_is_tier_1() {
    let c = item(
        Some("DSP"),
        Some("Texas Instruments"),
        Some("TMS320F28335PGFA"),
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.manufacturer_country.as_deref(), Some("US"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::Brand));
    assert_eq!(c.family.as_deref(), Some("dsp"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.31"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    assert!(c.confidence >= 0.9, "{c:?}");
}

#[test]
fn abbreviated_marking_m430f1611_is_ti_msp430() {
    let c = item(None, None, Some("M430F1611"));
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::PartNumber));
    assert_eq!(c.family.as_deref(), Some("mcu"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    // The same marking inside GUR-style text, with a lot code in front.
    let c = item(
        Some("Microcircuit (16-bit low-power microcontroller) 68ANFPTG4 M430F1611"),
        None,
        None,
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.part_number.as_deref(), Some("M430F1611"));
}

#[test]
fn split_tms320_marking_in_text_is_ti_dsp() {
    let c = item(Some("Microcircuit TMS 320VC5416"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.family.as_deref(), Some("dsp"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.31"));
}

#[test]
fn altera_ep4ce22_is_intel_fpga() {
    let c = item(None, None, Some("EP4CE22F17C8N"));
    assert_eq!(c.manufacturer.as_deref(), Some("Intel"));
    assert_eq!(c.legacy_brand.as_deref(), Some("Altera"));
    assert_eq!(c.family.as_deref(), Some("fpga"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    let c = item(Some("FPGA Cyclone IV"), Some("Altera"), Some("EP4CE22"));
    assert_eq!(c.manufacturer.as_deref(), Some("Intel"));
    assert!(
        has_reason(&c, "brand 'Altera' → Intel (acquired 2015)"),
        "{:?}",
        c.reasons
    );
}

#[test]
fn nxp_mcimx6q_is_a_processor() {
    let c = item(Some("i.MX6 Quad"), Some("NXP"), Some("MCIMX6Q5EYM10AC"));
    assert_eq!(c.manufacturer.as_deref(), Some("NXP Semiconductors"));
    assert_eq!(c.manufacturer_country.as_deref(), Some("NL"));
    assert_eq!(c.family.as_deref(), Some("cpu"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.31"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
}

#[test]
fn ublox_neo_m8n_is_gnss_module_tier_2() {
    let c = item(Some("GNSS module"), Some("u-blox"), Some("NEO-M8N-0-10"));
    assert_eq!(c.manufacturer.as_deref(), Some("u-blox"));
    assert_eq!(c.manufacturer_country.as_deref(), Some("CH"));
    assert_eq!(c.family.as_deref(), Some("gnss_module"));
    assert_eq!(c.hs_code.as_deref(), Some("8526.91"));
    assert_eq!(c.chpl_tier, Some(Tier::T2));
    // u-blox "MAX-M10S" is a GNSS module, not a Maxim part.
    let c = item(Some("GNSS module MAX-M10S"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("u-blox"));
    assert_eq!(c.hs_code.as_deref(), Some("8526.91"));
}

#[test]
fn murata_grm_is_mlcc() {
    let c = item(
        Some("100nF 50V X7R 0603"),
        Some("Murata"),
        Some("GRM188R71H104KA93D"),
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Murata Manufacturing"));
    assert_eq!(c.family.as_deref(), Some("mlcc"));
    assert_eq!(c.hs_code.as_deref(), Some("8532.24"));
    assert_eq!(c.chpl_tier, Some(Tier::T2));
}

#[test]
fn russian_microcontroller_stm32_is_st() {
    let c = item(
        Some("Микроконтроллер STM32F407VGT6, корпус LQFP100"),
        None,
        None,
    );
    assert_eq!(c.manufacturer.as_deref(), Some("STMicroelectronics"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::PartNumber));
    assert_eq!(c.family.as_deref(), Some("mcu"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    assert!(has_reason(&c, "микроконтроллер"), "{:?}", c.reasons);
}

#[test]
fn plis_without_part_number_is_fpga_tier_1_without_maker() {
    let c = item(Some("ПЛИС"), None, None);
    assert_eq!(c.manufacturer, None);
    assert_eq!(c.family.as_deref(), Some("fpga"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    assert!(c.confidence > 0.3 && c.confidence < 0.8, "{}", c.confidence);
}

#[test]
fn french_and_english_keywords_classify_brandless_items() {
    let cases = [
        (
            "Condensateur céramique multicouche 100 nF",
            "mlcc",
            "8532.24",
        ),
        ("Microcontrôleurs 32 bits", "mcu", "8542.31"),
        ("Mémoire flash NAND 8 Go", "memory", "8542.32"),
        ("Processeur de signal numérique", "dsp", "8542.31"),
        ("Récepteur GPS", "gnss_module", "8526.91"),
        ("Roulement à billes 6204", "ball_bearing", "8482.10"),
        ("Операционный усилитель", "amplifier", "8542.33"),
    ];
    for (name, family, hs) in cases {
        let c = item(Some(name), None, None);
        assert_eq!(c.family.as_deref(), Some(family), "{name}: {:?}", c.reasons);
        assert_eq!(c.hs_code.as_deref(), Some(hs), "{name}");
        assert_eq!(c.manufacturer, None, "{name}");
    }
}

#[test]
fn keyword_exclusions_keep_lookalikes_out() {
    for name in [
        "Memory card 32GB",
        "Food processor 800W",
        "LED diode électroluminescente",
    ] {
        let c = item(Some(name), None, None);
        assert_eq!(c.chpl_tier, None, "{name}: {:?}", c.reasons);
    }
}

#[test]
fn scrap_and_metal_items_classify_to_nothing() {
    for name in [
        "Copper scrap, 2 tonnes",
        "Ferraille E3",
        "aluminium ingots",
        "Лом меди, 5 т",
        "Déchets de câbles en cuivre",
    ] {
        let c = item(Some(name), None, None);
        assert_eq!(c.manufacturer, None, "{name}");
        assert_eq!(c.family, None, "{name}");
        assert_eq!(c.hs_code, None, "{name}");
        assert_eq!(c.chpl_tier, None, "{name}");
        assert_eq!(c.confidence, 0.0, "{name}");
    }
}

#[test]
fn scrap_marker_ignores_chip_words_in_text() {
    let c = item(
        Some("Scrap PCBs and CPUs with TMS320 chips, for gold recovery"),
        None,
        None,
    );
    assert_eq!(c.chpl_tier, None, "{:?}", c.reasons);
    assert_eq!(c.manufacturer, None);
    assert!(has_reason(&c, "scrap"));
}

#[test]
fn brand_wins_lm317_with_texas_instruments() {
    let c = item(None, Some("Texas Instruments"), Some("LM317"));
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::Brand));
    let c = item(None, Some("STMicroelectronics"), Some("LM317T"));
    assert_eq!(c.manufacturer.as_deref(), Some("STMicroelectronics"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.39"));
    assert!(
        has_reason(&c, "wins over the colliding prefix"),
        "{:?}",
        c.reasons
    );
}

#[test]
fn brand_wins_max232_with_maxim_is_analog_devices() {
    let c = item(None, Some("Maxim"), Some("MAX232"));
    assert_eq!(c.manufacturer.as_deref(), Some("Analog Devices"));
    assert_eq!(c.legacy_brand.as_deref(), Some("Maxim Integrated"));
    assert_eq!(c.family.as_deref(), Some("interface"));
    assert!(
        has_reason(
            &c,
            "brand 'Maxim' → Analog Devices (Maxim Integrated, acquired 2021)"
        ),
        "{:?}",
        c.reasons
    );
    // TI also makes MAX3232: its brand wins over the Maxim prefix.
    let c = item(None, Some("Texas Instruments"), Some("MAX3232IDR"));
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.family.as_deref(), Some("interface"));
}

#[test]
fn brand_wins_xc7a35t_with_xilinx_is_amd() {
    let c = item(None, Some("Xilinx"), Some("XC7A35T-1CPG236C"));
    assert_eq!(c.manufacturer.as_deref(), Some("AMD"));
    assert_eq!(c.legacy_brand.as_deref(), Some("Xilinx"));
    assert_eq!(c.family.as_deref(), Some("fpga"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
    assert!(
        has_reason(&c, "brand 'Xilinx' → AMD (acquired 2022)"),
        "{:?}",
        c.reasons
    );
}

#[test]
fn xc_prefix_collision_infineon_c166() {
    let c = item(None, None, Some("SAF-XC164CS-32F40F"));
    assert_eq!(c.manufacturer.as_deref(), Some("Infineon Technologies"));
    assert_eq!(c.family.as_deref(), Some("mcu"));
    let c = item(None, None, Some("XC3S500E"));
    assert_eq!(c.manufacturer.as_deref(), Some("AMD"));
}

#[test]
fn tps_prefix_collision_avx_tantalum_vs_ti_power() {
    let c = item(None, None, Some("TPSD107K010R0050"));
    assert_eq!(c.manufacturer.as_deref(), Some("KYOCERA AVX"));
    assert_eq!(c.hs_code.as_deref(), Some("8532.21"));
    assert_eq!(c.chpl_tier, Some(Tier::T2));
    let c = item(None, None, Some("TPS54312"));
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.39"));
}

#[test]
fn shared_prefix_without_brand_gets_lower_confidence_or_no_maker() {
    let with_brand = item(None, Some("Texas Instruments"), Some("LM317"));
    let bare = item(None, None, Some("LM317"));
    assert_eq!(bare.manufacturer.as_deref(), Some("Texas Instruments"));
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
fn unknown_brand_is_not_overridden_by_a_prefix() {
    let c = item(
        Some("LM317 compatible regulator"),
        Some("HGSEMI"),
        Some("LM317"),
    );
    assert_eq!(c.manufacturer, None);
    assert_eq!(c.family.as_deref(), Some("analog_ic"));
    assert_eq!(c.chpl_tier, Some(Tier::T1));
}

#[test]
fn brand_spellings_case_punctuation_and_diacritics() {
    let cases = [
        ("T.I.", "Texas Instruments"),
        ("Texas Instr.", "Texas Instruments"),
        ("TEXAS INSTRUMENTS INC", "Texas Instruments"),
        ("N.X.P.", "NXP Semiconductors"),
        ("nxp semiconductors n.v.", "NXP Semiconductors"),
        ("Freescale Semiconductor", "NXP Semiconductors"),
        ("Infin. Tech.", "Infineon Technologies"),
        ("ST Microelectronics", "STMicroelectronics"),
        ("U-BLOX AG", "u-blox"),
        ("Xilinx Inc. (AMD)", "AMD"),
        (
            "Maxim Integrated Products (Analog Devices)",
            "Analog Devices",
        ),
        ("Burr Brown", "Texas Instruments"),
        ("Intel Corporation", "Intel"),
        ("Atmel", "Microchip Technology"),
    ];
    for (brand, want) in cases {
        let c = item(None, Some(brand), None);
        let want = (!want.is_empty()).then_some(want);
        assert_eq!(
            c.manufacturer.as_deref(),
            want,
            "brand {brand:?}: {:?}",
            c.reasons
        );
        if want.is_some() {
            assert_eq!(c.manufacturer_via, Some(MatchVia::Brand), "{brand}");
        }
    }
}

#[test]
fn placeholder_brand_falls_back_to_part_number() {
    let c = item(None, Some("N/A"), Some("STM32F103C8T6"));
    assert_eq!(c.manufacturer.as_deref(), Some("STMicroelectronics"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::PartNumber));
}

#[test]
fn manufacturer_named_in_text() {
    let c = item(Some("Texas Instruments op-amp OPA2277UA"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Texas Instruments"));
    assert_eq!(c.manufacturer_via, Some(MatchVia::Text));
    assert_eq!(c.hs_code.as_deref(), Some("8542.33"));
    // A GUR marking: "IOR" is International Rectifier's logo text.
    let c = item(Some("Power MOSFET FR5305 IOR 949I"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Infineon Technologies"));
    assert_eq!(c.legacy_brand.as_deref(), Some("International Rectifier"));
    assert_eq!(c.chpl_tier, Some(Tier::T3A));
}

#[test]
fn cyrillic_lookalike_letters_in_markings() {
    let c = item(Some("Микросхема МАХ1660ЕЕЕ"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Analog Devices"));
    let c = item(Some("Microcontroller С8051F120"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Silicon Labs"));
}

#[test]
fn micron_fbga_code_and_russian_memory() {
    let c = item(Some("RAM memory chip 9VK17-D9PSK"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Micron Technology"));
    assert_eq!(c.hs_code.as_deref(), Some("8542.32"));
    let c = item(Some("Микросхема памяти K4S511632D-UC75"), None, None);
    assert_eq!(c.manufacturer.as_deref(), Some("Samsung Electronics"));
    assert_eq!(c.family.as_deref(), Some("memory"));
}

#[test]
fn certificates_and_dimensions_are_not_part_numbers() {
    let c = item(
        Some("ISO 9001 certified, USB 2.0, AC220V, M8x1.25 bolts, TEL: 0522-123456"),
        None,
        None,
    );
    assert_eq!(c.manufacturer, None, "{:?}", c.reasons);
    assert_eq!(c.chpl_tier, None, "{:?}", c.reasons);
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

// ---------------------------------------------------------------------------- activities

#[test]
fn activity_nace_4677_is_scrap() {
    let m = reference().classify_activity("NACE:46.77");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].scheme, "NACE");
    assert_eq!(m[0].code, "46.77");
    assert_eq!(m[0].label, "Wholesale of waste and scrap");
    assert_eq!(m[0].sector, Sector::ScrapMetals);
    assert_eq!(m[0].via, ActivityVia::Code);
    assert_eq!(m[0].key(), "NACE:46.77");
}

#[test]
fn activity_french_label_is_scrap() {
    let m = reference().classify_activity("Commerce de gros de déchets et débris");
    assert!(!m.is_empty());
    assert_eq!(sectors(&m), vec![Sector::ScrapMetals]);
    assert!(m.iter().any(|x| x.key() == "NACE:46.77"), "{m:?}");
    assert!(m.iter().all(|x| x.via == ActivityVia::Label));
    // Accents and case do not matter.
    let m = reference().classify_activity("COMMERCE DE GROS DE DECHETS ET DEBRIS");
    assert!(m.iter().any(|x| x.key() == "NACE:46.77"));
}

#[test]
fn activity_nace_4652_is_electronics_trade() {
    let m = reference().classify_activity("NACE:46.52");
    assert_eq!(sectors(&m), vec![Sector::ElectronicsTrade]);
    assert_eq!(m[0].code, "46.52");
    let m = reference().classify_activity("NACE21:46.50");
    assert_eq!(sectors(&m), vec![Sector::ElectronicsTrade]);
}

#[test]
fn activity_uk_sic_46770() {
    for input in ["SIC:46770", "46770", "UK SIC 2007: 46770"] {
        let m = reference().classify_activity(input);
        assert_eq!(m.len(), 1, "{input}: {m:?}");
        assert_eq!(m[0].scheme, "SIC");
        assert_eq!(m[0].code, "46770");
        assert_eq!(m[0].sector, Sector::ScrapMetals);
    }
    // A SIC subclass missing from the table reads as its NACE class.
    let m = reference().classify_activity("SIC:52109");
    assert_eq!(
        m.first().map(ActivityMatch::key).as_deref(),
        Some("NACE:52.10")
    );
    assert_eq!(m[0].via, ActivityVia::Equivalent);
    assert_eq!(m[0].sector, Sector::Logistics);
}

#[test]
fn activity_bare_and_naf_codes() {
    for input in ["46.77", "4677Z", "46.77Z", "NAF:4677Z"] {
        let m = reference().classify_activity(input);
        assert_eq!(
            m.first().map(ActivityMatch::key).as_deref(),
            Some("NACE:46.77"),
            "{input}"
        );
    }
}

#[test]
fn activity_isic_and_morocco_nma() {
    let r = reference();
    for input in ["ISIC:4669", "NMA:4669", "NMA:46.69"] {
        let m = r.classify_activity(input);
        assert_eq!(m.len(), 1, "{input}");
        assert_eq!(m[0].sector, Sector::ScrapMetals, "{input}");
        assert_eq!(m[0].code, "4669");
    }
    // NMA follows ISIC at four digits; a NACE-style NMA code reads as its NACE class.
    let m = r.classify_activity("NMA:46.77");
    assert_eq!(
        m.first().map(ActivityMatch::key).as_deref(),
        Some("NACE:46.77")
    );
    assert_eq!(m[0].via, ActivityVia::Equivalent);
    let m = r.classify_activity("NMA:4652");
    assert_eq!(sectors(&m), vec![Sector::ElectronicsTrade]);
}

#[test]
fn activity_free_text_in_french() {
    let r = reference();
    let m = r.classify_activity("Import-export de composants électroniques");
    assert!(sectors(&m).contains(&Sector::ElectronicsTrade), "{m:?}");
    let m = r.classify_activity("Récupération et commerce de ferraille");
    assert_eq!(sectors(&m), vec![Sector::ScrapMetals], "{m:?}");
    let m = r.classify_activity("Fourniture de systèmes d'automatisation industrielle");
    assert_eq!(sectors(&m), vec![Sector::DualUseMachinery], "{m:?}");
    let m = r.classify_activity("Transitaire, commissionnaire en douane");
    assert_eq!(sectors(&m), vec![Sector::Logistics], "{m:?}");
}

#[test]
fn activity_unknown_inputs_match_nothing() {
    let r = reference();
    assert!(r.classify_activity("").is_empty());
    assert!(r.classify_activity("NACE:99.99").is_empty());
    assert!(r.classify_activity("FOO:46.77").is_empty());
    assert!(r.classify_activity("Bakery and pastry shop").is_empty());
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
    let err = match Reference::load(Some(dir.path())) {
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
    let err = match Reference::load(Some(dir.path())) {
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
    let err = match Reference::load(Some(dir.path())) {
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
    let err = match Reference::load(Some(dir.path())) {
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
    let err = match Reference::load(Some(dir.path())) {
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
    let err = Reference::load(Some(&missing)).err();
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
    let r = match Reference::load(Some(dir.path())) {
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

#[test]
fn page_text_naming_another_maker_does_not_override_a_specific_pattern() {
    let r = reference();
    let page = "We distribute Texas Instruments, Analog Devices and more";
    let c = r.classify_item(
        Some("Microcontroller"),
        None,
        Some("STM32F407VGT6"),
        &[page],
    );
    assert_eq!(
        c.manufacturer.as_deref(),
        Some("STMicroelectronics"),
        "{:?}",
        c.reasons
    );
    assert_eq!(c.manufacturer_via, Some(MatchVia::PartNumber));
    // A shared prefix, by contrast, yields to the named maker.
    let c = r.classify_item(
        Some("Regulator, STMicroelectronics"),
        None,
        Some("LM317T"),
        &[],
    );
    assert_eq!(
        c.manufacturer.as_deref(),
        Some("STMicroelectronics"),
        "{:?}",
        c.reasons
    );
    assert_eq!(c.manufacturer_via, Some(MatchVia::Text));
}
