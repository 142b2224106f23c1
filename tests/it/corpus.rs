//! The labelled scenario corpus: 28 entities served on 127.0.0.1, checked
//! twice (before and after), with every expected finding asserted and no
//! unexpected one allowed. Prints precision and recall (run with
//! `cargo test --test corpus -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};

use crate::support::Env;
use pivotwatch::app::demo::Page;
use pivotwatch::record::Severity::{self, *};

/// A catalogue row: designation, brand, part number.
type Row = (&'static str, &'static str, &'static str);

#[derive(Default, Clone)]
struct Registry {
    activity: &'static str,
    address: &'static str,
    officers: &'static [&'static str],
    capital: &'static str,
}

#[derive(Clone)]
enum After {
    Same,
    Catalogue(Vec<Row>),
    Registry(Registry),
    Blocked,
    /// Rows reordered and timestamps changed: no change.
    Shuffled,
}

struct Scenario {
    id: &'static str,
    /// A true pivot (should raise at least one high finding) or a control.
    pivot: bool,
    lang: &'static str,
    activity: &'static [&'static str],
    registry: Option<Registry>,
    catalogue: Option<Vec<Row>>,
    after: After,
    /// Findings expected on the first check: (rule, severity, substrings of the summary).
    first: Vec<(&'static str, Severity, &'static [&'static str])>,
    /// Findings expected on the second check.
    second: Vec<(&'static str, Severity, &'static [&'static str])>,
}

const SCRAP: &[Row] = &[
    ("Ferraille lourde E3", "", "FER-E3"),
    ("Cuivre millberry", "", "CU-MB"),
    ("Aluminium 6063 chutes", "", "AL-6063"),
];
const SCRAP_EN: &[Row] = &[
    ("Heavy melting steel HMS 1/2", "", "HMS-12"),
    ("Copper wire scrap, bare bright", "", "CU-BB"),
];
const SCRAP_RU: &[Row] = &[
    ("Лом чёрных металлов 3А", "", "LOM-3A"),
    ("Медный лом", "", "CU-LOM"),
];
const CHIPS: &[Row] = &[
    (
        "Semiconductors, MCU 32-bit",
        "STMicroelectronics",
        "STM32F103C8T6",
    ),
    ("Op-amp dual", "Analog Devices", "AD8622ARZ"),
];

fn with(base: &[Row], extra: &[Row]) -> Vec<Row> {
    base.iter().chain(extra).copied().collect()
}

fn scrap_registry() -> Registry {
    Registry {
        activity: "Commerce de gros de déchets et débris (NACE 46.77)",
        address: "12 rue de Fès, Tanger",
        officers: &["Karim El Idrissi"],
        capital: "100 000 MAD",
    }
}

fn scenarios() -> Vec<Scenario> {
    let s = |id, pivot, lang, activity, registry, catalogue, after, first, second| Scenario {
        id,
        pivot,
        lang,
        activity,
        registry,
        catalogue,
        after,
        first,
        second,
    };
    vec![
        // ---- true pivots
        s(
            "scrap-ti",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[("DSP 32-bit C2000", "Texas Instruments", "TMS320F28335PGFA")],
            )),
            vec![],
            vec![(
                "profile_mismatch",
                High,
                &["waste and scrap", "Texas Instruments", "Tier 1"],
            )],
        ),
        s(
            "scrap-fr-brandless",
            true,
            "fr",
            &["NACE:46.77"],
            None,
            Some(SCRAP.to_vec()),
            After::Catalogue(with(
                SCRAP,
                &[
                    ("Processeur de signal", "", "TMS320F28335PGFA"),
                    ("Circuit logique programmable", "", "EP4CE22F17C8N"),
                ],
            )),
            vec![],
            vec![("profile_mismatch", High, &["Texas Instruments", "Intel"])],
        ),
        s(
            "scrap-ru",
            true,
            "ru",
            &["NACE:46.77"],
            None,
            Some(SCRAP_RU.to_vec()),
            After::Catalogue(with(
                SCRAP_RU,
                &[
                    ("Микроконтроллер STM32F407VGT6", "", "STM32F407VGT6"),
                    ("ПЛИС Cyclone IV", "", ""),
                ],
            )),
            vec![],
            vec![("profile_mismatch", High, &["STMicroelectronics", "Tier 1"])],
        ),
        s(
            "scrap-abbrev",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(SCRAP_EN, &[("MCU, used, tested", "", "M430F1611")])),
            vec![],
            vec![("profile_mismatch", High, &["Texas Instruments"])],
        ),
        s(
            "scrap-xilinx",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[("FPGA Artix-7", "Xilinx", "XC7A35T-1CSG324C")],
            )),
            vec![],
            vec![("profile_mismatch", High, &["AMD"])],
        ),
        s(
            "scrap-freescale",
            true,
            "en",
            &["SIC:46770"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[(
                    "i.MX 6 application processor",
                    "Freescale",
                    "MCIMX6Q5EYM10AC",
                )],
            )),
            vec![],
            vec![("profile_mismatch", High, &["NXP"])],
        ),
        s(
            "scrap-mlcc",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[("MLCC 0.1uF 50V X7R 0603", "Murata", "GRM188R71H104KA93D")],
            )),
            vec![],
            vec![("profile_mismatch", High, &["Murata", "Tier 2"])],
        ),
        s(
            "scrap-first-seen",
            true,
            "fr",
            &["NACE:46.77"],
            None,
            Some(with(
                SCRAP,
                &[("Processeur i.MX 6Quad", "NXP", "MCIMX6Q5EYM10AC")],
            )),
            After::Same,
            vec![("profile_mismatch", High, &["NXP", "lists 1 part"])],
            vec![],
        ),
        s(
            "scrap-escalates",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(with(
                SCRAP_EN,
                &[("DSP", "Texas Instruments", "TMS320F28335PGFA")],
            )),
            After::Catalogue(with(
                SCRAP_EN,
                &[
                    ("DSP", "Texas Instruments", "TMS320F28335PGFA"),
                    ("FPGA Cyclone IV E", "Intel", "EP4CE22F17C8N"),
                ],
            )),
            vec![("profile_mismatch", High, &["Texas Instruments"])],
            vec![("profile_mismatch", High, &["Intel", "Texas Instruments"])],
        ),
        s(
            "scrap-grows",
            true,
            "en",
            &["NACE:46.77"],
            None,
            Some(with(
                SCRAP_EN,
                &[("DSP", "Texas Instruments", "TMS320F28335PGFA")],
            )),
            After::Catalogue(with(
                SCRAP_EN,
                &[
                    ("DSP", "Texas Instruments", "TMS320F28335PGFA"),
                    ("MCU 16-bit", "Texas Instruments", "MSP430F1611IPMR"),
                ],
            )),
            vec![("profile_mismatch", High, &["Texas Instruments"])],
            vec![(
                "controlled_goods",
                High,
                &["MSP430F1611IPMR", "listed 1 controlled item before"],
            )],
        ),
        s(
            "activity-pivot",
            true,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Registry(Registry {
                activity: "Commerce de gros de composants et d'équipements électroniques et de télécommunication (NACE 46.52)",
                ..scrap_registry()
            }),
            vec![],
            vec![(
                "activity_changed",
                High,
                &["scrap, waste and metals", "electronics trade"],
            )],
        ),
        s(
            "free-zone-move",
            true,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Registry(Registry {
                address: "Zone Franche d'Exportation, Lot 112, Tanger",
                ..scrap_registry()
            }),
            vec![],
            vec![("registry_change", High, &["Zone Franche"])],
        ),
        s(
            "generic-trader-fpga",
            true,
            "en",
            &["NACE:46.90"],
            None,
            Some(vec![("Office furniture", "", "DESK-1")]),
            After::Catalogue(vec![
                ("Office furniture", "", "DESK-1"),
                ("FPGA Cyclone IV E", "Intel", "EP4CE22F17C8N"),
            ]),
            vec![],
            vec![("profile_mismatch", Medium, &["Intel"])],
        ),
        s(
            "logistics-gnss",
            true,
            "en",
            &["NACE:52.29"],
            None,
            Some(vec![("Pallet wrap", "", "PW-1")]),
            After::Catalogue(vec![
                ("Pallet wrap", "", "PW-1"),
                ("GNSS module", "u-blox", "NEO-M8N-0-10"),
            ]),
            vec![],
            vec![("profile_mismatch", Medium, &["u-blox"])],
        ),
        s(
            "custom-keyword",
            true,
            "fr",
            &["NACE:46.77"],
            None,
            Some(SCRAP.to_vec()),
            After::Catalogue(with(
                SCRAP,
                &[("Gilets pare-balles, usage militaire", "", "GPB-1")],
            )),
            vec![],
            vec![
                ("items_added", Info, &["GPB-1"]),
                ("military-goods", High, &["militaire"]),
            ],
        ),
        s(
            "officers-change",
            false,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Registry(Registry {
                officers: &["Karim El Idrissi", "Oleg Petrov"],
                ..scrap_registry()
            }),
            vec![],
            vec![("registry_change", Medium, &["Oleg Petrov"])],
        ),
        // ---- controls: nothing high
        s(
            "distributor-chips",
            false,
            "en",
            &["NACE:46.52"],
            None,
            Some(CHIPS.to_vec()),
            After::Catalogue(with(
                CHIPS,
                &[("DSP 32-bit C2000", "Texas Instruments", "TMS320F28335PGFA")],
            )),
            vec![],
            vec![("controlled_goods", Low, &["electronics trader"])],
        ),
        s(
            "distributor-first",
            false,
            "en",
            &["NACE:46.52"],
            None,
            Some(CHIPS.to_vec()),
            After::Same,
            vec![],
            vec![],
        ),
        s(
            "manufacturer-fpga",
            false,
            "en",
            &["NACE:26.11"],
            None,
            Some(CHIPS.to_vec()),
            After::Catalogue(with(CHIPS, &[("FPGA Artix-7", "AMD", "XC7A35T-1CSG324C")])),
            vec![],
            vec![("controlled_goods", Low, &["AMD"])],
        ),
        s(
            "scrap-more-scrap",
            false,
            "fr",
            &["NACE:46.77"],
            None,
            Some(SCRAP.to_vec()),
            After::Catalogue(with(
                SCRAP,
                &[
                    ("Laiton mélangé", "", "LAI-M"),
                    ("Plomb de batteries", "", "PB-BAT"),
                ],
            )),
            vec![],
            vec![("items_added", Info, &["LAI-M", "PB-BAT"])],
        ),
        s(
            "scrap-shuffled",
            false,
            "fr",
            &["NACE:46.77"],
            None,
            Some(SCRAP.to_vec()),
            After::Shuffled,
            vec![],
            vec![],
        ),
        s(
            "scrap-blocked",
            false,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Blocked,
            vec![],
            vec![],
        ),
        s(
            "scrap-collision",
            false,
            "en",
            &["NACE:46.77"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[
                    ("Baler wire, 3.2 mm", "Kiverco", "MAX-3200"),
                    ("Shear blade", "Lindemann", "XC-900"),
                ],
            )),
            vec![],
            vec![("items_added", Info, &["MAX-3200"])],
        ),
        s(
            "scrap-ewaste",
            false,
            "en",
            &["NACE:38.32"],
            None,
            Some(SCRAP_EN.to_vec()),
            After::Catalogue(with(
                SCRAP_EN,
                &[("Printed circuit boards scrap, low grade", "", "PCB-LG")],
            )),
            vec![],
            vec![("items_added", Info, &["PCB-LG"])],
        ),
        s(
            "capital-change",
            false,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Registry(Registry {
                capital: "150 000 MAD",
                ..scrap_registry()
            }),
            vec![],
            vec![("registry_change", Low, &["150 000 MAD"])],
        ),
        s(
            "address-change",
            false,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Registry(Registry {
                address: "48 boulevard Pasteur, Tanger",
                ..scrap_registry()
            }),
            vec![],
            vec![("registry_change", Medium, &["Pasteur"])],
        ),
        s(
            "registry-same",
            false,
            "fr",
            &[],
            Some(scrap_registry()),
            None,
            After::Same,
            vec![],
            vec![],
        ),
        s(
            "ru-distributor",
            false,
            "ru",
            &["NACE:46.52"],
            None,
            Some(vec![(
                "Микроконтроллер STM32F103C8T6",
                "STMicroelectronics",
                "STM32F103C8T6",
            )]),
            After::Shuffled,
            vec![],
            vec![],
        ),
    ]
}

fn registry_page(r: &Registry, stamp: &str) -> String {
    let officers: String = r.officers.iter().map(|o| format!("<li>{o}</li>")).collect();
    format!(
        "<html><head><meta charset=utf-8><title>RC</title></head><body><p class=gen>{stamp}</p><table>\
         <tr><th>Activité</th><td class=act>{}</td></tr><tr><th>Siège</th><td class=addr>{}</td></tr>\
         <tr><th>Capital</th><td class=cap>{}</td></tr></table><ul class=off>{officers}</ul></body></html>",
        r.activity, r.address, r.capital
    )
}

fn catalogue_page(rows: &[Row], lang: &str, stamp: &str) -> String {
    let head = match lang {
        "fr" => "<th>Désignation</th><th>Marque</th><th>Référence</th>",
        "ru" => "<th>Наименование</th><th>Производитель</th><th>Артикул</th>",
        _ => "<th>Item</th><th>Brand</th><th>Part</th>",
    };
    let body: String = rows
        .iter()
        .map(|(n, b, p)| {
            format!("<tr><td class=n>{n}</td><td class=b>{b}</td><td class=p>{p}</td></tr>")
        })
        .collect();
    format!(
        "<html lang={lang}><head><meta charset=utf-8><title>Catalogue</title><script>var now='{stamp}'</script></head>\
         <body><div class=promo>{stamp}</div><table class=cat><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
}

const BLOCK: &str = "<html><head><title>Attention Required! | Cloudflare</title></head><body><div id=cf-chl-widget>Please complete the security check (captcha) to access</div></body></html>";

fn watchlist(scs: &[Scenario]) -> String {
    let mut s = String::from(
        "[watchlist]\nname = \"corpus\"\nmaintainers = [\"analyst@example.org\"]\n\n\
         [[rule]]\nid = \"military-goods\"\nkeywords = [\"militaire\", \"military\", \"военн\"]\non = \"items\"\nseverity = \"high\"\ndescription = \"military keywords\"\n",
    );
    for sc in scs {
        let acts: Vec<String> = sc.activity.iter().map(|a| format!("\"{a}\"")).collect();
        s.push_str(&format!(
            "\n[[entity]]\nid = \"{}\"\nname = \"{} Co\"\nactivity = [{}]\n",
            sc.id,
            sc.id,
            acts.join(", ")
        ));
        if sc.registry.is_some() {
            s.push_str(&format!(
                "[[entity.source]]\nid = \"registry\"\nkind = \"registry\"\nurl = \"{{BASE}}/{}/rc\"\n[entity.source.fields]\n\
                 activity = \"td.act\"\naddress = \"td.addr\"\ncapital = \"td.cap\"\nofficers = {{ selector = \"ul.off li\", all = true }}\n",
                sc.id
            ));
        }
        if sc.catalogue.is_some() {
            s.push_str(&format!(
                "[[entity.source]]\nid = \"catalogue\"\nkind = \"catalogue\"\nurl = \"{{BASE}}/{}/cat\"\n[entity.source.items]\n\
                 row = \"table.cat tbody tr\"\nname = \"td.n\"\nmanufacturer = \"td.b\"\npart_number = \"td.p\"\n",
                sc.id
            ));
        }
    }
    s
}

fn publish(env: &Env, sc: &Scenario, after: bool) {
    let stamp = if after {
        "2026-11-28 10:00"
    } else {
        "2026-11-27 09:00"
    };
    if let Some(r) = &sc.registry {
        let r = match (&sc.after, after) {
            (After::Registry(n), true) => n.clone(),
            _ => r.clone(),
        };
        env.site.set(
            &format!("/{}/rc", sc.id),
            Page::html(registry_page(&r, stamp)),
        );
    }
    if let Some(rows) = &sc.catalogue {
        let page = match (&sc.after, after) {
            (After::Catalogue(n), true) => catalogue_page(n, sc.lang, stamp),
            (After::Blocked, true) => BLOCK.to_string(),
            (After::Shuffled, true) => {
                let mut r = rows.clone();
                r.reverse();
                catalogue_page(&r, sc.lang, stamp)
            }
            _ => catalogue_page(rows, sc.lang, stamp),
        };
        env.site.set(&format!("/{}/cat", sc.id), Page::html(page));
    }
}

type Seen = BTreeMap<(String, u8), Vec<(String, Severity, String)>>;

#[tokio::test]
async fn labelled_corpus_precision_and_recall() {
    let scs = scenarios();
    assert!(scs.len() >= 25);
    let env = Env::new().await;
    env.write(crate::support::SETTINGS, &watchlist(&scs));
    for sc in &scs {
        publish(&env, sc, false);
    }
    let mut seen: Seen = BTreeMap::new();
    for phase in [1u8, 2] {
        if phase == 2 {
            for sc in &scs {
                publish(&env, sc, true);
            }
        }
        for r in env.once().await {
            let sc = scs.iter().find(|s| s.id == r.entity).expect("known entity");
            let expect_status_ok = !(phase == 2 && matches!(sc.after, After::Blocked));
            if expect_status_ok {
                assert!(
                    r.error.is_none(),
                    "{}/{} phase {phase}: {:?}",
                    r.entity,
                    r.source,
                    r.error
                );
            } else {
                assert_eq!(
                    r.status,
                    pivotwatch::record::CheckStatus::Blocked,
                    "{}",
                    r.entity
                );
            }
            for f in r.findings {
                seen.entry((r.entity.clone(), phase)).or_default().push((
                    f.rule.clone(),
                    f.severity,
                    f.summary.clone(),
                ));
            }
        }
    }

    // Every expected finding, nothing else.
    let mut expected: BTreeSet<(String, u8, String, Severity)> = BTreeSet::new();
    let mut problems = Vec::new();
    for sc in &scs {
        for (phase, list) in [(1u8, &sc.first), (2, &sc.second)] {
            let got = seen
                .get(&(sc.id.to_string(), phase))
                .cloned()
                .unwrap_or_default();
            for (rule, sev, facts) in list.iter() {
                expected.insert((sc.id.to_string(), phase, rule.to_string(), *sev));
                match got.iter().find(|(r, _, _)| r == rule) {
                    None => problems.push(format!(
                        "{} phase {phase}: missing {rule} ({sev}); got {got:?}",
                        sc.id
                    )),
                    Some((_, s, summary)) => {
                        if s != sev {
                            problems.push(format!(
                                "{} phase {phase}: {rule} is {s}, expected {sev}: {summary}",
                                sc.id
                            ));
                        }
                        for fact in facts.iter() {
                            if !summary.contains(fact) {
                                problems.push(format!(
                                    "{} phase {phase}: {rule} summary lacks {fact:?}: {summary}",
                                    sc.id
                                ));
                            }
                        }
                    }
                }
            }
            for (rule, sev, summary) in &got {
                if !list.iter().any(|(r, _, _)| r == rule) {
                    problems.push(format!(
                        "{} phase {phase}: unexpected {rule} ({sev}): {summary}",
                        sc.id
                    ));
                }
            }
        }
    }
    // Precision and recall over (entity, phase, rule, severity).
    let observed: BTreeSet<(String, u8, String, Severity)> = seen
        .iter()
        .flat_map(|((e, p), v)| {
            v.iter()
                .map(move |(r, s, _)| (e.clone(), *p, r.clone(), *s))
        })
        .collect();
    let tp = observed.intersection(&expected).count() as f64;
    let precision = if observed.is_empty() {
        1.0
    } else {
        tp / observed.len() as f64
    };
    let recall = if expected.is_empty() {
        1.0
    } else {
        tp / expected.len() as f64
    };
    // Entity level: the pivots expected to raise a high finding do, and no
    // control raises one.
    let high = |id: &str| {
        seen.iter()
            .any(|((e, _), v)| e == id && v.iter().any(|(_, s, _)| *s >= High))
    };
    let expect_high: Vec<&Scenario> = scs
        .iter()
        .filter(|s| s.pivot && s.first.iter().chain(&s.second).any(|f| f.1 >= High))
        .collect();
    let caught = expect_high.iter().filter(|s| high(s.id)).count();
    let false_alarms: Vec<&str> = scs
        .iter()
        .filter(|s| !s.pivot && high(s.id))
        .map(|s| s.id)
        .collect();
    println!(
        "corpus: {} entities ({} pivots, {} controls); findings (entity, check, rule, severity): {} expected, {} observed, \
         precision {:.3}, recall {:.3}; high-severity pivots caught {caught}/{}; controls with a high finding: {}",
        scs.len(),
        scs.iter().filter(|s| s.pivot).count(),
        scs.iter().filter(|s| !s.pivot).count(),
        expected.len(),
        observed.len(),
        precision,
        recall,
        expect_high.len(),
        false_alarms.len()
    );
    assert!(
        false_alarms.is_empty(),
        "high findings on controls: {false_alarms:?}\n{}",
        problems.join("\n")
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// Real page shapes (issue #12), written for this test from the facts in research/domain.md
// section 5; no saved third-party page is copied. A scrap-metal firm whose catalogue turns
// into each shape, on 127.0.0.1, checked twice.

/// A Russian distributor row: the part number inside the name, and the brand the branded
/// version of the page shows (the brand-less version has no brand column).
const RU_ROWS: &[(&str, &str)] = &[
    (
        "LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220",
        "Texas Instrumen",
    ),
    (
        "LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220",
        "HGSEMI",
    ),
    ("LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220", "UMW"),
    ("LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220", "CJ"),
    ("LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220", "ST"),
    (
        "LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220",
        "onsemi",
    ),
    ("LM317T, Стабилизатор напряжения 1.2-37В 1.5А TO-220", ""),
    ("1N4007, Диод выпрямительный 1А 1000В DO-41", "Diotec"),
    ("1N4007, Диод выпрямительный 1А 1000В DO-41", "Vishay"),
    ("1N4007, Диод выпрямительный 1А 1000В DO-41", "CJ"),
    ("1N4007, Диод выпрямительный 1А 1000В DO-41", ""),
    ("2N3904, Транзистор биполярный NPN 40В 0.2А TO-92", "onsemi"),
    ("2N3904, Транзистор биполярный NPN 40В 0.2А TO-92", "Diotec"),
    (
        "2N3904, Транзистор биполярный NPN 40В 0.2А TO-92",
        "Multicomp",
    ),
    ("2N3904, Транзистор биполярный NPN 40В 0.2А TO-92", "CDIL"),
    ("DS12C887+, Часы реального времени RTC DIP-18", "Maxim"),
    ("DS12C887+, Часы реального времени RTC DIP-18", ""),
    ("NE555P, Таймер DIP-8", "Texas Instruments"),
    ("NE555P, Таймер DIP-8", "HGSEMI"),
    (
        "STM32F103C8T6, Микроконтроллер 32-бит ARM Cortex-M3 LQFP-48",
        "ST",
    ),
    (
        "STM32F103C8T6, Микроконтроллер 32-бит ARM Cortex-M3 LQFP-48",
        "",
    ),
    ("Разъём D-Sub DB9 вилка на кабель", ""),
    ("Разъём D-Sub DB9 вилка на кабель", ""),
    ("Резистор 0.25 Вт 10 кОм 5%", ""),
    ("Резистор 0.25 Вт 10 кОм 5%", ""),
    ("Резистор 0.25 Вт 1 кОм 5%", ""),
];

const RU_SCRAP: &[(&str, &str)] = &[("Лом чёрных металлов 3А", ""), ("Медный лом", "")];

/// A heavy Russian listing (over 100 KB: the navigation of a large shop around the table).
fn ru_listing(rows: &[(&str, &str)], branded: bool, damage: bool, stamp: &str) -> String {
    let damage_text = |s: &str| -> String {
        if damage {
            s.chars()
                .map(|c| {
                    if ('\u{0400}'..='\u{04FF}').contains(&c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect()
        } else {
            s.to_string()
        }
    };
    let mut nav = String::new();
    for i in 0..1400 {
        nav.push_str(&format!(
            "<li><a href=\"/catalog/{i}\">Раздел каталога {i}: микросхемы, транзисторы, разъёмы</a></li>"
        ));
    }
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(i, (n, b))| {
            let brand = if branded {
                format!("<td class=b>{b}</td>")
            } else {
                String::new()
            };
            format!(
                "<tr class=item><td class=n><a href=\"/product/{}\">{}</a></td>{brand}<td class=price>{} руб.</td><td class=stock>{} шт.</td></tr>",
                1000 + i,
                damage_text(n),
                10 + i,
                100 + i
            )
        })
        .collect();
    let head = damage_text(if branded {
        "<th>Наименование</th><th>Производитель</th><th>Цена</th><th>Наличие</th>"
    } else {
        "<th>Наименование</th><th>Цена</th><th>Наличие</th>"
    });
    format!(
        "<!DOCTYPE html><html lang=ru><head><meta charset=utf-8><title>{}</title><script>var t='{stamp}'</script></head>\
         <body><nav><ul>{}</ul></nav><table class=list><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\
         <footer>{stamp}</footer></body></html>",
        damage_text("Каталог электронных компонентов"),
        damage_text(&nav)
    )
}

/// A distributor search API in the Mouser/TME style.
fn api_json(parts: &[(&str, &str, &str)]) -> String {
    let items: Vec<String> = parts
        .iter()
        .map(|(m, p, d)| {
            format!(
                r#"{{"Manufacturer":"{m}","ManufacturerPartNumber":"{p}","Description":"{d}","Availability":"1200 In Stock","PriceBreaks":[{{"Quantity":1,"Price":"0.52"}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"Errors":[],"SearchResults":{{"NumberOfResult":{},"Parts":[{}]}}}}"#,
        parts.len(),
        items.join(",")
    )
}

const API_PARTS: &[(&str, &str, &str)] = &[
    (
        "Analog Devices",
        "DS12C887+",
        "IC RTC CLK/CALENDAR PAR 18-EDIP",
    ),
    (
        "onsemi",
        "2N3904BU",
        "Bipolar Transistors - BJT NPN 40V 200mA",
    ),
    (
        "Texas Instruments",
        "LM317T",
        "Linear Voltage Regulators 1.2-37V Adj Pos 1.5A",
    ),
];
const API_SCRAP: &[(&str, &str, &str)] = &[("", "HMS-12", "Heavy melting steel scrap HMS 1/2")];

/// A product page of a Chinese distributor: the rendered table, and the product data as
/// SSR state inside a script (which is never read: a product that is only in the state is
/// not an item).
fn ssr_page(stamp: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>GD32F103C8T6</title></head><body><div id=__nuxt>\
         <table class=spec><tbody>\
         <tr><td class=n>GD32F103C8T6 ARM Cortex-M3 MCU 64KB Flash LQFP-48</td><td class=b>GigaDevice</td><td class=p>GD32F103C8T6</td></tr>\
         <tr><td class=n>STM32F103C8T6 ARM Cortex-M3 MCU 64KB Flash LQFP-48</td><td class=b>ST</td><td class=p>STM32F103C8T6</td></tr>\
         </tbody></table><p class=upd>{stamp}</p></div>\
         <script>window.__NUXT__=(function(a,b){{return {{data:[{{product:{{pn:\"STM32F407VGT6\",brand:a,desc:b}}}}],state:{{}}}}}}(\"ST\",\"MCU\"));</script>\
         </body></html>"
    )
}

/// (rule, severity, facts in the summary, facts never in it).
type Expect = (&'static str, Severity, Vec<&'static str>, Vec<&'static str>);

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Html,
    Json,
}

struct Real {
    id: &'static str,
    activity: &'static str,
    shape: Shape,
    /// (page, content type) per phase.
    pages: [Page; 2],
    /// (rule, severity, facts in the summary, facts never in it) per phase.
    expect: [Vec<Expect>; 2],
    /// Phase 2 must be `blocked` with this reason in the error.
    blocked: Option<&'static str>,
}

fn html_rows(rows: &[(&str, &str, &str)], stamp: &str) -> String {
    let body: String = rows
        .iter()
        .map(|(n, b, p)| {
            format!("<tr><td class=n>{n}</td><td class=b>{b}</td><td class=p>{p}</td></tr>")
        })
        .collect();
    format!(
        "<html><head><meta charset=utf-8></head><body><table class=spec><tbody>{body}</tbody></table><p class=upd>{stamp}</p></body></html>"
    )
}

fn real_scenarios() -> Vec<Real> {
    let s1 = "2026-11-27 09:00";
    let s2 = "2026-11-28 10:00";
    let scrap = || html_rows(&[("Heavy melting steel HMS 1/2", "", "HMS-12")], s1);
    let with = |b: &str| Page::html(b.to_string());
    let status = |code: u16, b: &str| Page {
        status: code,
        ..Page::html(b.to_string())
    };
    // The resistors are not on the CHPL: the informational rule reports them.
    let resistors = (
        "items_added",
        Info,
        vec!["3 new items not on the CHPL"],
        vec!["LM317T"],
    );
    let high_ru_brandless = vec![
        (
            "profile_mismatch",
            High,
            vec![
                "23 parts",
                "2 from STMicroelectronics",
                "21 with no maker named",
                "Tier 1",
            ],
            vec!["Texas Instruments", "HGSEMI"],
        ),
        resistors.clone(),
    ];
    let mut v = vec![
        Real {
            id: "ru-brandless",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [
                with(&ru_listing(RU_SCRAP, false, false, s1)),
                with(&ru_listing(&[RU_SCRAP, RU_ROWS].concat(), false, false, s2)),
            ],
            expect: [vec![], high_ru_brandless.clone()],
            blocked: None,
        },
        Real {
            id: "ru-branded",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [
                with(&ru_listing(RU_SCRAP, true, false, s1)),
                with(&ru_listing(&[RU_SCRAP, RU_ROWS].concat(), true, false, s2)),
            ],
            expect: [
                vec![],
                vec![
                    (
                        "profile_mismatch",
                        High,
                        vec![
                            "23 parts",
                            "12 from STMicroelectronics (3), Diotec Semiconductor (2), Texas Instruments (2) and 4 other makers (5)",
                            "6 from second sources (HGSEMI 2, JCET 2, CDIL 1, UMW 1)",
                            "5 with no maker named",
                            "Tier 1",
                        ],
                        vec![
                            "Vishay Intertechnology (",
                            "HGSEMI (",
                            "from Texas Instruments",
                        ],
                    ),
                    resistors.clone(),
                ],
            ],
            blocked: None,
        },
        Real {
            id: "ru-damaged",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [
                with(&ru_listing(RU_SCRAP, false, true, s1)),
                with(&ru_listing(&[RU_SCRAP, RU_ROWS].concat(), false, true, s2)),
            ],
            expect: [vec![], high_ru_brandless],
            blocked: None,
        },
        Real {
            id: "scrap-discretes",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [
                with(&scrap()),
                with(&html_rows(
                    &[
                        ("Heavy melting steel HMS 1/2", "", "HMS-12"),
                        ("Rectifier diode 1A 1000V", "Diotec", "1N4007"),
                        ("NPN transistor TO-92", "Central", "2N3904"),
                        (
                            "Circular connector MIL-DTL-38999",
                            "Glenair",
                            "D38999/26WB35SN",
                        ),
                    ],
                    s2,
                )),
            ],
            expect: [
                vec![],
                vec![(
                    "profile_mismatch",
                    Medium,
                    vec!["3 parts from", "Glenair", "Tier 3.A"],
                    vec!["Tier 1"],
                )],
            ],
            blocked: None,
        },
        Real {
            id: "api-scrap",
            activity: "NACE:46.77",
            shape: Shape::Json,
            pages: [
                Page::json(api_json(API_SCRAP)),
                Page::json(api_json(&[API_SCRAP, API_PARTS].concat())),
            ],
            expect: [
                vec![],
                vec![(
                    "profile_mismatch",
                    High,
                    vec!["Analog Devices", "Texas Instruments", "onsemi", "Tier 1"],
                    vec!["no maker named"],
                )],
            ],
            blocked: None,
        },
        Real {
            id: "api-distributor",
            activity: "NACE:46.52",
            shape: Shape::Json,
            pages: [
                Page::json(api_json(API_PARTS)),
                Page::json(api_json(API_PARTS)),
            ],
            expect: [vec![], vec![]],
            blocked: None,
        },
        Real {
            id: "ssr-product",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [with(&scrap()), with(&ssr_page(s2))],
            expect: [
                vec![],
                vec![(
                    "profile_mismatch",
                    High,
                    vec![
                        "1 from STMicroelectronics",
                        "1 from second source (GigaDevice 1)",
                        "Tier 1",
                    ],
                    vec!["STM32F407VGT6"],
                )],
            ],
            blocked: None,
        },
        Real {
            id: "board-seller",
            activity: "NACE:46.77",
            shape: Shape::Html,
            pages: [
                with(&scrap()),
                with(&html_rows(
                    &[
                        ("Heavy melting steel HMS 1/2", "", "HMS-12"),
                        ("Open hardware board, uC: STM32F103C8T6", "Crowd Supply", ""),
                        ("Blue Pill development board STM32F103C8T6", "", ""),
                    ],
                    s2,
                )),
            ],
            // Boards carry other makers' chips: no ST part, nothing on the CHPL.
            expect: [
                vec![],
                vec![(
                    "items_added",
                    Info,
                    vec!["2 new items not on the CHPL"],
                    vec!["STMicroelectronics"],
                )],
            ],
            blocked: None,
        },
    ];
    // Block pages: after a good first check, none is a catalogue whose items were removed.
    let blocks: Vec<(&'static str, Shape, Page, &'static str)> = vec![
        (
            "block-px-403",
            Shape::Json,
            status(
                403,
                "<html><head><title>Access to this page has been denied</title></head><body><div id=px-captcha></div><p>Please complete the security check to continue.</p><script src=\"/px/client/main.min.js\"></script></body></html>",
            ),
            "block page or bot challenge",
        ),
        (
            "block-px-200-json",
            Shape::Json,
            with(
                "<html><head><title>Access to this page has been denied</title></head><body><div id=px-captcha></div><p>Press &amp; Hold. Please complete the security check.</p></body></html>",
            ),
            "a bot challenge",
        ),
        (
            "block-geo-en",
            Shape::Html,
            with(
                "<html><body><h1>Access restricted</h1><p>To use this service a Russian IP address is required.</p></body></html>",
            ),
            "a geo-block",
        ),
        (
            "block-geo-ru",
            Shape::Html,
            with(
                "<html><body><h1>Доступ ограничен</h1><p>Сайт недоступен в вашей стране. Для доступа требуется российский IP-адрес.</p></body></html>",
            ),
            "a geo-block",
        ),
        (
            "block-login-en",
            Shape::Html,
            with(
                "<html><body><form action=/login><p>Log in to see stock and prices.</p><input name=user><input name=pass type=password></form></body></html>",
            ),
            "a login wall",
        ),
        (
            "block-login-de",
            Shape::Html,
            with(
                "<html><body><p>Bitte melden Sie sich an, um Preise und Lagerbestand zu sehen.</p></body></html>",
            ),
            "a login wall",
        ),
        (
            "block-empty-fr",
            Shape::Html,
            with(
                "<html><body><h1>Recherche</h1><p>Aucun résultat ne correspond à votre recherche « ferraille ».</p></body></html>",
            ),
            "an empty result page",
        ),
        (
            "block-empty-ru",
            Shape::Html,
            with("<html><body><p>По вашему запросу ничего не найдено.</p></body></html>"),
            "an empty result page",
        ),
        (
            "block-js-shell",
            Shape::Html,
            with(
                "<!DOCTYPE html><html><head><script src=\"/_next/static/chunks/main.js\" defer></script></head><body><div id=\"__next\"></div><script>self.__next_f=self.__next_f||[];self.__next_f.push([0])</script></body></html>",
            ),
            "a JavaScript shell",
        ),
        ("block-empty-body", Shape::Html, with(""), "an empty body"),
    ];
    for (id, shape, page, reason) in blocks {
        let first = match shape {
            Shape::Html => with(&scrap()),
            Shape::Json => Page::json(api_json(API_SCRAP)),
        };
        v.push(Real {
            id,
            activity: "NACE:46.77",
            shape,
            pages: [first, page],
            expect: [vec![], vec![]],
            blocked: Some(reason),
        });
    }
    v
}

fn real_watchlist(scs: &[Real]) -> String {
    let mut s =
        String::from("[watchlist]\nname = \"real\"\nmaintainers = [\"analyst@example.org\"]\n");
    for sc in scs {
        s.push_str(&format!(
            "\n[[entity]]\nid = \"{}\"\nname = \"{} Co\"\nactivity = [\"{}\"]\n[[entity.source]]\nid = \"catalogue\"\nkind = \"catalogue\"\nurl = \"{{BASE}}/{}/cat\"\n",
            sc.id, sc.id, sc.activity, sc.id
        ));
        match (sc.shape, sc.id.starts_with("ru-")) {
            (Shape::Json, _) => s.push_str(
                "format = \"json\"\n[entity.source.items]\nrow = \"/SearchResults/Parts\"\nmanufacturer = \"/Manufacturer\"\npart_number = \"/ManufacturerPartNumber\"\n[entity.source.items.columns]\ndescription = \"/Description\"\n",
            ),
            (Shape::Html, true) => s.push_str(&format!(
                "[entity.source.items]\nrow = \"table.list tbody tr.item\"\nname = \"td.n\"\nprice = \"td.price\"\n{}[entity.source.items.columns]\nstock = \"td.stock\"\n",
                if sc.id == "ru-branded" { "manufacturer = \"td.b\"\n" } else { "" }
            )),
            (Shape::Html, false) => s.push_str(
                "[entity.source.items]\nrow = \"table.spec tbody tr\"\nname = \"td.n\"\nmanufacturer = \"td.b\"\npart_number = \"td.p\"\n",
            ),
        }
    }
    s
}

#[tokio::test]
async fn real_page_shapes_precision_recall_and_blocks() {
    let scs = real_scenarios();
    let env = Env::new().await;
    env.write(crate::support::SETTINGS, &real_watchlist(&scs));
    let mut expected: BTreeSet<(String, u8, String, Severity)> = BTreeSet::new();
    let mut observed: BTreeSet<(String, u8, String, Severity)> = BTreeSet::new();
    let mut problems = Vec::new();
    for phase in 0..2u8 {
        for sc in &scs {
            env.site
                .set(&format!("/{}/cat", sc.id), sc.pages[phase as usize].clone());
        }
        for r in env.once().await {
            let Some(sc) = scs.iter().find(|s| s.id == r.entity) else {
                problems.push(format!("unknown entity {}", r.entity));
                continue;
            };
            match (phase, sc.blocked) {
                (1, Some(reason)) => {
                    if r.status != pivotwatch::record::CheckStatus::Blocked {
                        problems.push(format!(
                            "{}: status {:?}, expected blocked ({:?})",
                            sc.id, r.status, r.error
                        ));
                    }
                    if !r.error.as_deref().unwrap_or("").contains(reason) {
                        problems.push(format!("{}: error lacks {reason:?}: {:?}", sc.id, r.error));
                    }
                    if r.changes
                        .iter()
                        .any(|c| matches!(c, pivotwatch::record::Change::ItemRemoved { .. }))
                    {
                        problems.push(format!("{}: a block page was read as items removed", sc.id));
                    }
                }
                _ => {
                    if r.error.is_some() {
                        problems.push(format!("{} phase {phase}: {:?}", sc.id, r.error));
                    }
                }
            }
            let want = &sc.expect[phase as usize];
            for (rule, sev, has, lacks) in want {
                expected.insert((sc.id.to_string(), phase, rule.to_string(), *sev));
                match r.findings.iter().find(|f| f.rule == *rule) {
                    None => problems.push(format!(
                        "{} phase {phase}: missing {rule}; got {:?}",
                        sc.id,
                        r.findings
                            .iter()
                            .map(|f| (&f.rule, f.severity, &f.summary))
                            .collect::<Vec<_>>()
                    )),
                    Some(f) => {
                        if f.severity != *sev {
                            problems.push(format!(
                                "{} phase {phase}: {rule} is {}, expected {sev}: {}",
                                sc.id, f.severity, f.summary
                            ));
                        }
                        for h in has {
                            if !f.summary.contains(h) {
                                problems.push(format!(
                                    "{} phase {phase}: summary lacks {h:?}: {}",
                                    sc.id, f.summary
                                ));
                            }
                        }
                        for l in lacks {
                            if f.summary.contains(l) {
                                problems.push(format!(
                                    "{} phase {phase}: summary has {l:?}: {}",
                                    sc.id, f.summary
                                ));
                            }
                        }
                        // Every maker named in the evidence is one the verdict attributes,
                        // and the summary's counts are the evidence's.
                        if rule == &"profile_mismatch" {
                            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                            for it in &f.evidence.items {
                                if let Some(m) = &it.manufacturer {
                                    *by.entry(m.as_str()).or_default() += 1;
                                }
                            }
                            for (m, n) in &by {
                                let counted = format!("{m} ({n})");
                                let single = format!("{n} from {m}");
                                let second = format!("{m} {n}");
                                let named_bare = f.summary.contains(m);
                                if by.len() > 1
                                    && !(f.summary.contains(&counted)
                                        || f.summary.contains(&single)
                                        || f.summary.contains(&second)
                                        || f.summary.contains("other makers"))
                                    || !named_bare && !f.summary.contains("other makers")
                                {
                                    problems.push(format!("{} phase {phase}: evidence has {n} item(s) of {m}, summary says: {}", sc.id, f.summary));
                                }
                            }
                        }
                    }
                }
            }
            for f in &r.findings {
                observed.insert((sc.id.to_string(), phase, f.rule.clone(), f.severity));
                if !want.iter().any(|(rule, _, _, _)| *rule == f.rule) {
                    problems.push(format!(
                        "{} phase {phase}: unexpected {} ({}): {}",
                        sc.id, f.rule, f.severity, f.summary
                    ));
                }
            }
        }
    }
    // `explain` counts what the findings count: the same controlled items, the same makers.
    for (id, has, lacks) in [
        (
            "ru-brandless",
            vec![
                "28 items, 23 controlled",
                "2 of them attributed",
                "STMicroelectronics (CH): 2",
                "no maker named: 21",
            ],
            vec!["Texas Instruments ("],
        ),
        (
            "ru-branded",
            vec![
                "28 items, 23 controlled",
                "18 of them attributed",
                "Texas Instruments (US): 2",
                "HGSEMI (CN): 2",
                "no maker named: 5",
            ],
            vec!["Texas Instruments (US): 7"],
        ),
    ] {
        let o = crate::support::process::pivotwatch(env.dir.path(), &["explain", id]);
        let out = crate::support::process::stdout(&o);
        for h in has {
            if !out.contains(h) {
                problems.push(format!(
                    "explain {id} lacks {h:?}:\n{out}{}",
                    crate::support::process::stderr(&o)
                ));
            }
        }
        for l in lacks {
            if out.contains(l) {
                problems.push(format!("explain {id} has {l:?}:\n{out}"));
            }
        }
    }
    let tp = observed.intersection(&expected).count() as f64;
    let precision = if observed.is_empty() {
        1.0
    } else {
        tp / observed.len() as f64
    };
    let recall = if expected.is_empty() {
        1.0
    } else {
        tp / expected.len() as f64
    };
    let blocks = scs.iter().filter(|s| s.blocked.is_some()).count();
    println!(
        "real page shapes: {} entities ({blocks} block pages); findings: {} expected, {} observed, precision {precision:.3}, recall {recall:.3}",
        scs.len(),
        expected.len(),
        observed.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The goal of issue #12 on held-out pages is every pivot at its severity and no false
    // alarm; on pages written for the test nothing less than that is acceptable.
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision}, recall {recall}"
    );
}
