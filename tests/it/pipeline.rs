//! End-to-end checks against a real HTTP server on 127.0.0.1 and real sled
//! files: fetch → extract → store → diff → detect → .eml alerts.

use crate::support::{CATALOGUE_WATCHLIST, Env, SETTINGS, catalogue_page};
use pivotwatch::app::demo::Page;
use pivotwatch::check::Checker;
use pivotwatch::record::{Change, CheckStatus};

const SCRAP: &[(&str, &str, &str, &str)] = &[
    ("Copper scrap, 1 t", "", "CU-1", "7000"),
    ("Steel scrap E3", "", "FE-E3", "240"),
];

#[tokio::test]
async fn first_unchanged_then_changed_check() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    env.site
        .set("/shop", Page::html(catalogue_page(SCRAP, "09:00", None)));

    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    assert_eq!(env.store().history("acme/shop").unwrap().len(), 1);

    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged);
    assert_eq!(
        env.store().history("acme/shop").unwrap().len(),
        1,
        "an unchanged check stores no snapshot"
    );
    assert!(env.eml_files().is_empty());

    let mut rows = SCRAP.to_vec();
    rows.push(("DSP 32-bit", "Texas Instruments", "TMS320F28335PGFA", "310"));
    rows[0].3 = "7100";
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "10:00", None)));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed);
    let kinds: Vec<(String, String)> = r[0]
        .changes
        .iter()
        .map(|c| match c {
            Change::ItemAdded { item, .. } => ("added".to_string(), item.clone()),
            Change::ItemChanged {
                item, attributes, ..
            } => (format!("changed {}", attributes.join(",")), item.clone()),
            other => (format!("{other:?}"), String::new()),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("changed price".to_string(), "CU1".to_string()),
            ("added".to_string(), "TMS320F28335PGFA".to_string())
        ]
    );
    // A scrap dealer (NACE 46.77) now listing a TI DSP: one pivot finding.
    let rules: Vec<&str> = r[0].findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, vec!["profile_mismatch"]);
    let f = &r[0].findings[0];
    assert_eq!(f.severity, pivotwatch::record::Severity::High);
    assert!(
        f.summary
            .contains("wholesale of waste and scrap (NACE 46.77)"),
        "{}",
        f.summary
    );
    assert!(
        f.summary.contains("Texas Instruments") && f.summary.contains("CHPL Tier 1 (HS 8542.31)"),
        "{}",
        f.summary
    );
    assert_eq!(f.evidence.items.len(), 1);
    assert_eq!(f.evidence.items[0].tier.as_deref(), Some("1"));
    let store = env.store();
    assert_eq!(store.history("acme/shop").unwrap().len(), 2);
    let findings = store.findings().unwrap();
    assert_eq!(findings.len(), r[0].findings.len());
    drop(store);

    // One .eml per finding, each a well-formed MIME message.
    let files = env.eml_files();
    assert_eq!(files.len(), findings.len());
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let msg = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("MIME");
        let subject = msg.subject().unwrap_or_default();
        assert!(subject.starts_with("[pivotwatch] "), "{subject}");
        assert!(subject.contains("Acme Recycling"), "{subject}");
        assert!(msg.message_id().is_some_and(|m| m.starts_with("finding-")));
        let to = msg
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string();
        assert_eq!(to, "desk@watchdog.test");
        let text = msg.body_text(0).unwrap_or_default();
        assert!(text.contains("TMS320F28335PGFA"), "{text}");
        let html = msg.body_html(0).unwrap_or_default();
        assert!(html.contains("<table"), "{html}");
    }
}

#[tokio::test]
async fn reordered_rows_and_outside_noise_are_no_change() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    env.site
        .set("/shop", Page::html(catalogue_page(SCRAP, "09:00", None)));
    assert_eq!(env.once().await[0].status, CheckStatus::New);
    let mut rows = SCRAP.to_vec();
    rows.reverse();
    // Case and whitespace noise inside the cells too.
    rows[0].0 = "STEEL   scrap e3";
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "23:59", None)));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Unchanged, "{:?}", r[0].changes);
    assert_eq!(env.store().history("acme/shop").unwrap().len(), 1);
}

#[tokio::test]
async fn block_page_fails_the_check_and_removes_nothing() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    env.site
        .set("/shop", Page::html(catalogue_page(SCRAP, "09:00", None)));
    env.once().await;
    env.site.set(
        "/shop",
        Page::html("<html><head><title>Just a moment...</title></head><body><div id=\"challenge-platform\">Checking if you are a robot (captcha)</div></body></html>"),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Blocked, "{:?}", r[0]);
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("matched nothing")
    );
    assert!(r[0].changes.is_empty());
    let store = env.store();
    assert_eq!(store.history("acme/shop").unwrap().len(), 1);
    assert_eq!(
        store
            .latest_snapshot("acme/shop")
            .unwrap()
            .unwrap()
            .record
            .items
            .len(),
        2
    );
    assert!(store.findings().unwrap().is_empty());
    let st = store.source_state("acme/shop").unwrap().unwrap();
    assert_eq!(st.consecutive_failures, 1);

    // A plain page without the rows (no challenge markers) is a failure.
    drop(store);
    env.site.set(
        "/shop",
        Page::html("<html><body><p>We moved!</p></body></html>"),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Failed);
    assert_eq!(
        env.store()
            .source_state("acme/shop")
            .unwrap()
            .unwrap()
            .consecutive_failures,
        2
    );
}

#[tokio::test]
async fn pagination_collects_every_page() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    env.site.set(
        "/shop",
        Page::html(catalogue_page(&SCRAP[..1], "x", Some("/shop?p=2"))),
    );
    env.site.set(
        "/shop?p=2",
        Page::html(catalogue_page(&SCRAP[1..], "x", Some("shop?p=3"))),
    );
    env.site.set(
        "/shop?p=3",
        Page::html(catalogue_page(
            &[("Brass scrap", "", "BR-1", "5")],
            "x",
            Some("/shop"),
        )),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::New, "{:?}", r[0].error);
    let snap = env.store().latest_snapshot("acme/shop").unwrap().unwrap();
    let keys: Vec<&String> = snap.record.items.keys().collect();
    assert_eq!(keys, vec!["BR1", "CU1", "FEE3"]);
}

#[tokio::test]
async fn charsets_decode_into_the_record() {
    let env = Env::new().await;
    let wl = r#"
[[entity]]
id = "ru"
name = "RU Trade"
[[entity.source]]
id = "reg"
kind = "registry"
url = "{BASE}/ru"
[entity.source.fields]
activity = "td.act"
[[entity]]
id = "ar"
name = "AR Trade"
[[entity.source]]
id = "reg"
kind = "registry"
url = "{BASE}/ar"
[entity.source.fields]
activity = "td.act"
"#;
    env.write(SETTINGS, wl);
    let (ru, _, _) = encoding_rs::WINDOWS_1251.encode("<html><head><meta charset=\"windows-1251\"></head><body><table><tr><td class=act>Микроконтроллеры</td></tr></table></body></html>");
    env.site.set(
        "/ru",
        Page {
            content_type: "text/html".into(),
            body: ru.into_owned(),
            ..Page::html("")
        },
    );
    let (ar, _, _) = encoding_rs::WINDOWS_1256.encode(
        "<html><body><table><tr><td class=act>تجارة الخردة</td></tr></table></body></html>",
    );
    env.site.set(
        "/ar",
        Page {
            content_type: "text/html; charset=windows-1256".into(),
            body: ar.into_owned(),
            ..Page::html("")
        },
    );
    let r = env.once().await;
    assert!(r.iter().all(|r| r.status == CheckStatus::New), "{r:?}");
    let store = env.store();
    let act =
        |k: &str| store.latest_snapshot(k).unwrap().unwrap().record.fields["activity"].display();
    assert_eq!(act("ru/reg"), "Микроконтроллеры");
    assert_eq!(act("ar/reg"), "تجارة الخردة");
}

#[tokio::test]
async fn oversized_body_and_private_address_are_refused() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let huge = catalogue_page(SCRAP, &"x".repeat(300 * 1024), None);
    env.site.set("/shop", Page::html(huge));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Failed);
    assert!(
        r[0].error.as_deref().unwrap_or("").contains("cap"),
        "{:?}",
        r[0].error
    );

    let env2 = Env::new().await;
    // A host name: an IP-literal private URL is refused by the configuration
    // already (`check`, tests/it/edges.rs); this is the guard at fetch time, on
    // the address the name resolves to.
    let by_name = env2.site.base().replace("127.0.0.1", "localhost");
    env2.write(
        &SETTINGS.replace(
            "allow_private_addresses = true",
            "allow_private_addresses = false",
        ),
        &CATALOGUE_WATCHLIST.replace("{BASE}", &by_name),
    );
    env2.site
        .set("/shop", Page::html(catalogue_page(SCRAP, "x", None)));
    let r = env2.once().await;
    assert_eq!(r[0].status, CheckStatus::Failed);
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("allow_private_addresses"),
        "{:?}",
        r[0].error
    );
    assert_eq!(
        env2.site.requests(),
        0,
        "the guard refuses before connecting"
    );
}

#[tokio::test]
async fn reopened_store_keeps_history_and_evidence() {
    let env = Env::new().await;
    env.write(SETTINGS, CATALOGUE_WATCHLIST);
    let page1 = catalogue_page(SCRAP, "1", None);
    env.site.set("/shop", Page::html(page1.clone()));
    env.once().await;
    env.site
        .set("/shop", Page::html(catalogue_page(&SCRAP[..1], "2", None)));
    env.once().await;
    // Each `once` opened and closed the store; open it again.
    let store = env.store();
    let ids = store.history("acme/shop").unwrap();
    assert_eq!(ids.len(), 2);
    let first = store.snapshot(ids[0]).unwrap().unwrap();
    assert_eq!(
        store.blob(&first.body_hash).unwrap().unwrap(),
        page1.as_bytes()
    );
    assert!(
        store.findings().unwrap().is_empty(),
        "a removal alone raises no finding in the minimal rule set"
    );
}

#[tokio::test]
async fn json_source_by_pointers_and_registry_field_change() {
    let env = Env::new().await;
    let wl = r#"
[[entity]]
id = "lei"
name = "Example Holdings"
[[entity.source]]
id = "gleif"
kind = "registry"
format = "json"
url = "{BASE}/lei"
[entity.source.fields]
name = "/data/attributes/entity/legalName/name"
status = "/data/attributes/entity/status"
city = "/data/attributes/entity/legalAddress/city"
"#;
    env.write(SETTINGS, wl);
    let doc = |city: &str| {
        format!(
            r#"{{"data":{{"attributes":{{"entity":{{"legalName":{{"name":"Example Holdings"}},"status":"ACTIVE","legalAddress":{{"city":"{city}"}}}}}}}}}}"#
        )
    };
    env.site.set("/lei", Page::json(doc("Casablanca")));
    assert_eq!(env.once().await[0].status, CheckStatus::New);
    env.site.set("/lei", Page::json(doc("Tanger Free Zone")));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed);
    assert_eq!(
        r[0].changes,
        vec![Change::FieldChanged {
            field: "city".into(),
            old: Some("Casablanca".into()),
            new: Some("Tanger Free Zone".into())
        }]
    );
    // The city is part of the address: a move into a free zone is high.
    assert_eq!(r[0].findings.len(), 1);
    assert_eq!(r[0].findings[0].rule, "registry_change");
    assert_eq!(
        r[0].findings[0].severity,
        pivotwatch::record::Severity::High
    );
    assert!(r[0].findings[0].summary.contains("Tanger Free Zone"));
    // The same condition is not raised twice.
    env.site.set("/lei", Page::json(doc("Casablanca")));
    env.once().await;
    env.site.set("/lei", Page::json(doc("Tanger Free Zone")));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed);
    assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
}

#[tokio::test]
async fn watchlist_rule_overrides_switch_off_and_replace_severity() {
    let env = Env::new().await;
    let wl = CATALOGUE_WATCHLIST.replace(
        "[watchlist]\nname = \"test\"",
        "[rules.profile_mismatch]\nseverity = \"critical\"\nmin_items = 2\n\n[rules.items_added]\nenabled = false\n\n[watchlist]\nname = \"test\"",
    );
    env.write(SETTINGS, &wl);
    env.site
        .set("/shop", Page::html(catalogue_page(SCRAP, "1", None)));
    env.once().await;
    // One TI part: below min_items = 2, and items_added is off → nothing.
    let mut rows = SCRAP.to_vec();
    rows.push(("DSP", "Texas Instruments", "TMS320F28335PGFA", "1"));
    rows.push(("Brass scrap", "", "BR-1", "2"));
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "2", None)));
    let r = env.once().await;
    assert_eq!(r[0].status, CheckStatus::Changed);
    let rules: Vec<&str> = r[0].findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, vec!["controlled_goods"], "{:?}", r[0].findings);
    // A second part reaches min_items: critical, as the watchlist says.
    rows.push(("MCU", "NXP", "MCIMX6Q5EYM10AC", "3"));
    env.site
        .set("/shop", Page::html(catalogue_page(&rows, "3", None)));
    let r = env.once().await;
    let f: Vec<(&str, pivotwatch::record::Severity)> = r[0]
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity))
        .collect();
    assert_eq!(
        f,
        vec![("profile_mismatch", pivotwatch::record::Severity::Critical)]
    );
}

/// `check_each` hands reports over in the order of the sources even when
/// the first one finishes last (a server that accepts and never answers),
/// and hands over every one of them.
#[tokio::test]
async fn reports_stream_in_source_order_behind_a_slow_source() {
    let env = Env::new().await;
    // Accepts connections and holds them without a byte of answer.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let mut wl = String::from("[watchlist]\nname = \"order\"\n");
    let mut ids = Vec::new();
    for i in 0..6 {
        let url = if i == 0 {
            format!("http://{silent_addr}/slow")
        } else {
            env.site.url(&format!("/p{i}"))
        };
        env.site.set(
            &format!("/p{i}"),
            Page::html(format!(
                "<html><body><h1 class=\"n\">Page {i}</h1></body></html>"
            )),
        );
        wl.push_str(&format!(
            "\n[[entity]]\nid = \"e{i}\"\nname = \"E{i}\"\n[[entity.source]]\nid = \"page\"\nurl = \"{url}\"\n[entity.source.fields]\ntitle = \"h1.n\"\n"
        ));
        ids.push((format!("e{i}"), "page".to_string()));
    }
    env.write(
        &SETTINGS.replace("timeout = \"5s\"", "timeout = \"1s\""),
        &wl,
    );
    let config = env.config();
    let checker = Checker::new(config.clone(), env.store()).expect("checker");
    let mut seen = Vec::new();
    checker
        .check_each(&ids, |r| seen.push((r.entity.clone(), r.status)))
        .await;
    let order: Vec<&str> = seen.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(order, ["e0", "e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(
        seen[0].1,
        CheckStatus::Failed,
        "the silent server times out"
    );
    assert!(
        seen[1..].iter().all(|(_, s)| *s == CheckStatus::New),
        "{seen:?}"
    );
}
