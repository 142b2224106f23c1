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
