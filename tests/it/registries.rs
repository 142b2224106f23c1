//! The registry adapters against loopback APIs that serve the fixture
//! payloads of `tests/fixtures/registries/` (fictional companies, in the
//! public APIs' JSON shape), changed between checks.

use std::process::Command;

use pivotwatch::app::demo::{Page, Site};
use serde_json::{Value, json};

use crate::support::process::BIN;
use crate::support::{Env, SETTINGS};

/// The Companies House key the tests configure: it must arrive as the
/// HTTP Basic user and appear nowhere else.
pub(crate) const CH_KEY: &str = "ch-test-key-5f3a9c71";
/// `Basic base64("ch-test-key-5f3a9c71:")`.
pub(crate) const CH_BASIC: &str = "Basic Y2gtdGVzdC1rZXktNWYzYTljNzE6";

fn fixture(path: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/registries/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture JSON")
}

/// The four Companies House responses of company 01234567.
pub(crate) struct Ch {
    pub(crate) profile: Value,
    pub(crate) officers: Value,
    pub(crate) psc: Value,
    pub(crate) filings: Value,
}

impl Ch {
    pub(crate) fn load() -> Ch {
        Ch {
            profile: fixture("companies_house/profile.json"),
            officers: fixture("companies_house/officers.json"),
            psc: fixture("companies_house/psc.json"),
            filings: fixture("companies_house/filing_history.json"),
        }
    }

    pub(crate) fn serve(&self, site: &Site) {
        let c = "/company/01234567";
        site.set(c, Page::json(self.profile.to_string()));
        site.set(
            &format!("{c}/officers?items_per_page=100&start_index=0"),
            Page::json(self.officers.to_string()),
        );
        site.set(
            &format!("{c}/persons-with-significant-control?items_per_page=100&start_index=0"),
            Page::json(self.psc.to_string()),
        );
        site.set(
            &format!("{c}/filing-history?items_per_page=10"),
            Page::json(self.filings.to_string()),
        );
    }
}

pub(crate) const CH_WATCHLIST: &str = r#"
[watchlist]
name = "uk"
maintainers = ["analyst@example.org"]

[[entity]]
id = "harrowgate"
name = "Harrowgate Metal Recovery"
jurisdiction = "GB"
activity = ["SIC:38320"]

[[entity.source]]
id = "ch"
adapter = "companies-house"
company_number = "01234567"
"#;

fn ch_settings() -> String {
    format!(
        "{SETTINGS}\n[registries.companies_house]\nbase_url = \"{{BASE}}\"\napi_key_file = \"ch.key\"\n"
    )
}

/// (rule, severity, summary) of each finding of the reports, in order.
fn findings(reports: &[pivotwatch::check::CheckReport]) -> Vec<(String, String, String)> {
    reports
        .iter()
        .flat_map(|r| &r.findings)
        .map(|f| (f.rule.clone(), f.severity.to_string(), f.summary.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companies_house_changes_become_exact_findings_and_the_key_stays_secret() {
    let env = Env::new().await;
    env.write(&ch_settings(), CH_WATCHLIST);
    std::fs::write(env.dir.path().join("ch.key"), format!("{CH_KEY}\n")).unwrap();
    let mut ch = Ch::load();
    ch.serve(&env.site);

    // 1. First check: one snapshot of the four responses.
    let r = env.once().await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::New, "{r:?}");
    assert_eq!(
        r[0].url,
        format!("{}/company/01234567", env.site.base()),
        "the source's URL is derived from base_url"
    );
    // Four requests: profile, officers, PSCs, filing history.
    assert_eq!(env.site.request_log().len(), 4);

    // 2. Churn only: new etags, items and natures in another order, new
    //    links and counters: nothing.
    ch.profile["etag"] = json!("ffffffffffffffffffffffffffffffffffffffff");
    ch.profile["links"]["self"] = json!("/company/01234567?x=1");
    ch.profile["accounts"]["next_due"] = json!("2027-01-31");
    ch.officers["etag"] = json!("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    ch.officers["items"].as_array_mut().unwrap().reverse();
    ch.psc["items"][0]["etag"] = json!("dddddddddddddddddddddddddddddddddddddddd");
    ch.psc["items"][0]["natures_of_control"]
        .as_array_mut()
        .unwrap()
        .reverse();
    ch.filings["items"][0]["links"]["document_metadata"] = json!("https://doc.test/x");
    ch.serve(&env.site);
    let r = env.once().await;
    assert_eq!(
        r[0].status,
        pivotwatch::record::CheckStatus::Unchanged,
        "{:?}",
        r[0].changes
    );
    assert!(r[0].findings.is_empty());

    // 3. A director appointed, the secretary resigned, the PSC ceased and a
    //    corporate PSC notified.
    ch.officers["items"].as_array_mut().unwrap().push(json!({
        "name": "OKONKWO, Daniel",
        "officer_role": "director",
        "appointed_on": "2026-11-20",
        "nationality": "Nigerian",
        "country_of_residence": "United Arab Emirates",
        "links": {"self": "/company/01234567/appointments/zz"}
    }));
    for o in ch.officers["items"].as_array_mut().unwrap() {
        if o["name"] == "PENROSE, Colin" {
            o["resigned_on"] = json!("2026-11-19");
        }
    }
    ch.officers["total_results"] = json!(3);
    ch.psc["items"][0]["ceased_on"] = json!("2026-11-20");
    ch.psc["items"].as_array_mut().unwrap().push(json!({
        "name": "Sable Trade FZE",
        "kind": "corporate-entity-person-with-significant-control",
        "natures_of_control": ["ownership-of-shares-75-to-100-percent"],
        "notified_on": "2026-11-20",
        "etag": "cccccccccccccccccccccccccccccccccccccccc"
    }));
    ch.psc["total_results"] = json!(2);
    ch.serve(&env.site);
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::Changed);
    assert_eq!(
        findings(&r),
        vec![(
            "registry_change".to_string(),
            "medium".to_string(),
            "Harrowgate Metal Recovery's registry record changed: \
             person with significant control ceased: Mrs Bridget Anne Halloran (individual; \
             ownership of shares 75 to 100 percent, right to appoint and remove directors, \
             voting rights 75 to 100 percent; notified 2017-06-02; ceased 2026-11-20); \
             officer appointed: OKONKWO, Daniel (director, appointed 2026-11-20, Nigerian, \
             resident in United Arab Emirates); \
             person with significant control added: Sable Trade FZE (corporate entity; \
             ownership of shares 75 to 100 percent; notified 2026-11-20); \
             officer resigned: PENROSE, Colin (secretary, appointed 2018-09-10, British, \
             resident in England, resigned 2026-11-19)"
                .to_string()
        )]
    );

    // 4. SIC 38320 (scrap) → 46520 (electronics), the office moved into
    //    the Tanger Free Zone, a new filing, and liquidation.
    ch.profile["sic_codes"] = json!(["46520"]);
    ch.profile["registered_office_address"] = json!({
        "premises": "Plot 12",
        "address_line_1": "Tanger Free Zone",
        "locality": "Tangier",
        "postal_code": "90000",
        "country": "Morocco"
    });
    ch.profile["company_status"] = json!("liquidation");
    ch.filings["items"].as_array_mut().unwrap().insert(
        0,
        json!({
            "category": "address",
            "date": "2026-11-25",
            "description": "change-registered-office-address-company-with-date-old-address-new-address",
            "type": "AD01",
            "links": {"self": "/company/01234567/filing-history/new"}
        }),
    );
    ch.serve(&env.site);
    let r = env.once().await;
    assert_eq!(
        findings(&r),
        vec![
            (
                "activity_changed".to_string(),
                "high".to_string(),
                "Harrowgate Metal Recovery changed its registered activity lost \"SIC:38320\"; \
                 gained \"SIC:46520\" (scrap, waste and metals → electronics trade)"
                    .to_string()
            ),
            (
                "registry_change".to_string(),
                "high".to_string(),
                "Harrowgate Metal Recovery's registry record changed: \
                 registered office moved from \"Unit 4, Canal Street, Oldham, OL9 9ZZ, England\" \
                 to \"Plot 12, Tanger Free Zone, Tangier, 90000, Morocco\", into a free zone: \
                 Tanger Free Zone (MA); \
                 new filing: 2026-11-25 AD01: change registered office address company with date old address new address; \
                 company status changed from \"active\" to \"liquidation\""
                    .to_string()
            ),
        ]
    );

    // Every request carried the key as the HTTP Basic user.
    let log = env.site.request_log();
    assert_eq!(log.len(), 16, "four requests per check: {log:?}");
    for (path, auth) in &log {
        assert_eq!(auth.as_deref(), Some(CH_BASIC), "{path}");
        assert!(!path.contains(CH_KEY));
    }

    // The key appears in no output, log, mail or store-derived display.
    ch.profile["etag"] = json!("churn");
    ch.serve(&env.site);
    let dir = env.dir.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let flags = ["--config", "pivotwatch.toml", "--watchlists", "watchlists"];
        let mut out = String::new();
        for args in [
            &["check"][..],
            &["once", "--no-deliver"],
            &["once", "--json", "--no-deliver"],
            &["findings", "--since", "1d"],
            &["findings", "--json", "--since", "1d"],
            &["history", "harrowgate/ch"],
            &["diff", "harrowgate/ch"],
            &["diff", "harrowgate/ch", "--json"],
            &["explain", "harrowgate"],
            &["outbox", "list"],
        ] {
            let o = Command::new(BIN)
                .current_dir(&dir)
                .args(flags)
                .args(args)
                .env("RUST_LOG", "pivotwatch=trace,reqwest=trace,hyper=debug")
                .output()
                .expect("run pivotwatch");
            out.push_str(&String::from_utf8_lossy(&o.stdout));
            out.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        out
    })
    .await
    .unwrap();
    assert!(outputs.contains("harrowgate"), "{outputs}");
    assert!(outputs.contains("Tanger Free Zone"), "{outputs}");
    assert!(!outputs.contains(CH_KEY), "the key leaked: {outputs}");
    assert!(!outputs.contains(&CH_BASIC[6..]), "the encoded key leaked");
    let emls = env.eml_files();
    assert_eq!(emls.len(), 3, "one mail per finding");
    for p in emls {
        let m = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&m);
        assert!(!text.contains(CH_KEY), "{}", p.display());
        let parsed = mail_parser::MessageParser::default().parse(&m).unwrap();
        let body = parsed.body_text(0).unwrap_or_default().into_owned();
        assert!(!body.contains(CH_KEY), "{}", p.display());
    }
}

const LEI: &str = "9845001KESTREL0TR019";
const PARENT_LEI: &str = "2549003VOLGAHOLD0G63";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gleif_lapsed_lei_and_new_parent_are_findings_churn_is_not() {
    let env = Env::new().await;
    let settings = format!("{SETTINGS}\n[registries.gleif]\nbase_url = \"{{BASE}}/api/v1\"\n");
    env.write(
        &settings,
        &format!(
            r#"
[watchlist]
name = "lei"
[[entity]]
id = "kestrel"
name = "Kestrel Components"
[[entity.source]]
id = "gleif"
adapter = "gleif"
lei = "{LEI}"
"#
        ),
    );
    let path = format!("/api/v1/lei-records/{LEI}");
    let mut rec = fixture("gleif/lei_record.json");
    env.site.set(&path, Page::json(rec.to_string()));
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::New, "{r:?}");
    assert_eq!(env.site.request_log().len(), 1, "no parent: one request");

    // The golden copy's date and the record's update time move: nothing.
    rec["meta"]["goldenCopy"]["publishDate"] = json!("2025-05-16T00:00:00Z");
    rec["data"]["attributes"]["registration"]["lastUpdateDate"] = json!("2025-05-16T01:02:03Z");
    env.site.set(&path, Page::json(rec.to_string()));
    let r = env.once().await;
    assert_eq!(
        r[0].status,
        pivotwatch::record::CheckStatus::Unchanged,
        "{:?}",
        r[0].changes
    );

    // The LEI lapses and a direct and ultimate parent appear.
    rec["data"]["attributes"]["registration"]["status"] = json!("LAPSED");
    for rel in ["direct-parent", "ultimate-parent"] {
        rec["data"]["relationships"][rel] = json!({"links": {
            "relationship-record": format!("https://api.gleif.org/api/v1/lei-records/{LEI}/{rel}-relationship"),
            "lei-record": format!("https://api.gleif.org/api/v1/lei-records/{LEI}/{rel}")
        }});
        env.site.set(
            &format!("{path}/{rel}"),
            Page::json(fixture("gleif/parent_record.json").to_string()),
        );
    }
    env.site.set(&path, Page::json(rec.to_string()));
    let r = env.once().await;
    assert_eq!(
        findings(&r),
        vec![(
            "registry_change".to_string(),
            "medium".to_string(),
            format!(
                "Kestrel Components's registry record changed: \
                 direct parent changed from (nothing) to \"VOLGA HOLDING GROUP AO (LEI {PARENT_LEI})\"; \
                 ultimate parent changed from (nothing) to \"VOLGA HOLDING GROUP AO (LEI {PARENT_LEI})\"; \
                 LEI registration status changed from \"ISSUED\" to \"LAPSED\" (the LEI lapsed)"
            )
        )]
    );
    // The record, then each parent the record names.
    assert_eq!(env.site.request_log().len(), 2 + 3);

    // A successor is named.
    rec["data"]["attributes"]["entity"]["successorEntity"] =
        json!({"lei": "5299009NEWCO0SUCC033", "name": "KESTREL NEWCO LTD"});
    env.site.set(&path, Page::json(rec.to_string()));
    assert_eq!(
        findings(&env.once().await),
        vec![(
            "registry_change".to_string(),
            "medium".to_string(),
            "Kestrel Components's registry record changed: successor entity changed from \
             (nothing) to \"KESTREL NEWCO LTD (LEI 5299009NEWCO0SUCC033)\""
                .to_string()
        )]
    );
}

const OC_TOKEN: &str = "oc-token-81d2e0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencorporates_officer_and_industry_code_changes_token_never_shown() {
    let env = Env::new().await;
    let settings = format!(
        "{SETTINGS}\n[registries.opencorporates]\nbase_url = \"{{BASE}}/v0.4\"\napi_key_file = \"oc.token\"\n"
    );
    std::fs::write(env.dir.path().join("oc.token"), OC_TOKEN).unwrap();
    env.write(
        &settings,
        r#"
[watchlist]
name = "oc"
[[entity]]
id = "bramley"
name = "Bramley Salvage"
[[entity.source]]
id = "oc"
adapter = "opencorporates"
jurisdiction = "gb"
company_number = "07654321"
"#,
    );
    let path = format!("/v0.4/companies/gb/07654321?api_token={OC_TOKEN}");
    let mut c = fixture("opencorporates/company.json");
    env.site.set(&path, Page::json(c.to_string()));
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::New, "{r:?}");
    assert_eq!(
        r[0].url,
        format!("{}/v0.4/companies/gb/07654321", env.site.base())
    );

    // Timestamps move: nothing.
    c["results"]["company"]["retrieved_at"] = json!("2025-11-01T06:00:00+00:00");
    c["results"]["company"]["updated_at"] = json!("2025-11-01T06:00:00+00:00");
    c["results"]["company"]["source"]["retrieved_at"] = json!("2025-11-01T06:00:00+00:00");
    env.site.set(&path, Page::json(c.to_string()));
    assert_eq!(
        env.once().await[0].status,
        pivotwatch::record::CheckStatus::Unchanged
    );

    // A new director; scrap recovery becomes electronics wholesale.
    c["results"]["company"]["officers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"officer": {"id": 123450002, "name": "RUSLAN TEMIROV", "position": "director", "start_date": "2026-10-01", "end_date": null}}));
    c["results"]["company"]["industry_codes"] = json!([{"industry_code": {
        "code": "46520", "description": "Wholesale of electronic and telecommunications equipment and parts",
        "code_scheme_id": "uk_sic_2007"}}]);
    env.site.set(&path, Page::json(c.to_string()));
    let r = env.once().await;
    assert_eq!(
        findings(&r),
        vec![
            (
                "activity_changed".to_string(),
                "high".to_string(),
                "Bramley Salvage changed its registered activity lost \"SIC:38320\"; \
                 gained \"SIC:46520\" (scrap, waste and metals → electronics trade)"
                    .to_string()
            ),
            (
                "registry_change".to_string(),
                "medium".to_string(),
                "Bramley Salvage's registry record changed: \
                 officer appointed: RUSLAN TEMIROV (director, appointed 2026-10-01)"
                    .to_string()
            ),
        ]
    );
    assert_eq!(env.site.request_log().len(), 3, "one request per check");

    // A failing request names the URL without the token.
    env.site.remove(&path);
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::Failed);
    let err = r[0].error.clone().unwrap_or_default();
    assert!(err.contains("/v0.4/companies/gb/07654321"), "{err}");
    assert!(!err.contains(OC_TOKEN), "{err}");
    let shown = format!("{r:?}");
    assert!(!shown.contains(OC_TOKEN), "{shown}");
    for p in env.eml_files() {
        assert!(!std::fs::read_to_string(&p).unwrap().contains(OC_TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companies_house_429_is_a_transient_failure_with_its_retry_after() {
    let env = Env::new().await;
    env.write(&ch_settings(), CH_WATCHLIST);
    std::fs::write(env.dir.path().join("ch.key"), CH_KEY).unwrap();
    let ch = Ch::load();
    ch.serve(&env.site);
    env.site.set(
        "/company/01234567/officers?items_per_page=100&start_index=0",
        Page {
            status: 429,
            content_type: "application/json".into(),
            headers: vec![("Retry-After".into(), "120".into())],
            body: br#"{"error":"rate limit exceeded"}"#.to_vec(),
        },
    );
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::Failed);
    assert!(r[0].transient, "a 429 is retried");
    assert_eq!(r[0].retry_after, Some(std::time::Duration::from_secs(120)));
    let err = r[0].error.clone().unwrap_or_default();
    assert!(err.contains("companies-house officers"), "{err}");
    assert!(err.contains("429"), "{err}");
    assert!(!err.contains(CH_KEY));
    // Nothing was committed: the next good check is the first snapshot.
    ch.serve(&env.site);
    assert_eq!(
        env.once().await[0].status,
        pivotwatch::record::CheckStatus::New
    );
}

#[test]
fn adapter_sources_are_validated_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let wl = r#"[watchlist]
name = "bad"
[[entity]]
id = "a"
name = "A"
[[entity.source]]
id = "ch"
adapter = "companies-house"
company_number = "1234567"
[[entity.source]]
id = "lei"
adapter = "gleif"
lei = "9845001KESTREL0TR018"
[[entity.source]]
id = "x"
adapter = "companieshouse"
company_number = "01234567"
[[entity.source]]
id = "u"
adapter = "gleif"
url = "https://api.gleif.org/api/v1/lei-records/9845001KESTREL0TR019"
lei = "9845001KESTREL0TR019"
[[entity.source]]
id = "oc"
adapter = "opencorporates"
company_number = "07654321"
"#;
    std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
    std::fs::write(dir.path().join("watchlists/bad.toml"), wl).unwrap();
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        "[registries.gleif]\napi_key_env = \"X\"\n[registries.companies_house]\napi_key_env = \"PIVOTWATCH_TEST_UNSET_VAR\"\n",
    )
    .unwrap();
    let out = crate::support::process::pivotwatch(
        dir.path(),
        &[
            "--config",
            "pivotwatch.toml",
            "--watchlists",
            "watchlists",
            "check",
        ],
    );
    let err = crate::support::process::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let at = |needle: &str| crate::support::process::at("watchlists/bad.toml", wl, needle);
    for (needle, msg) in [
        ("\"1234567\"", "must be 8 characters: write \"01234567\""),
        ("\"9845001KESTREL0TR018\"", "fails its check digits"),
        ("\"companieshouse\"", "unknown adapter \"companieshouse\""),
        ("\"https://api.gleif", "an adapter source has no `url`"),
        ("\"opencorporates\"", "needs `jurisdiction`"),
    ] {
        let loc = at(needle);
        assert!(
            err.lines().any(|l| l.contains(&loc) && l.contains(msg)),
            "expected {loc}: {msg} in\n{err}"
        );
    }
    assert!(err.contains("GLEIF needs no API key"), "{err}");
    assert!(
        err.contains("PIVOTWATCH_TEST_UNSET_VAR holding the API key is not set"),
        "{err}"
    );
}

#[test]
fn api_key_env_is_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
    std::fs::write(dir.path().join("watchlists/uk.toml"), CH_WATCHLIST).unwrap();
    std::fs::write(
        dir.path().join("pivotwatch.toml"),
        "[registries.companies_house]\napi_key_env = \"PIVOTWATCH_TEST_CH_KEY\"\n",
    )
    .unwrap();
    let run = |key: Option<&str>| {
        let mut c = Command::new(BIN);
        c.current_dir(dir.path())
            .args([
                "--config",
                "pivotwatch.toml",
                "--watchlists",
                "watchlists",
                "check",
            ])
            .env("RUST_LOG", "off")
            .env_remove("PIVOTWATCH_TEST_CH_KEY");
        if let Some(k) = key {
            c.env("PIVOTWATCH_TEST_CH_KEY", k);
        }
        c.output().expect("run pivotwatch")
    };
    let ok = run(Some(CH_KEY));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!all.contains(CH_KEY));
    assert_eq!(run(None).status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_adapter_shows_the_record_each_adapter_yields() {
    let env = Env::new().await;
    let settings = format!(
        "{SETTINGS}\n[registries.companies_house]\nbase_url = \"{{BASE}}\"\napi_key_file = \"ch.key\"\n\
         [registries.gleif]\nbase_url = \"{{BASE}}/api/v1\"\n\
         [registries.opencorporates]\nbase_url = \"{{BASE}}/v0.4\"\napi_key_file = \"oc.token\"\n"
    );
    env.write(&settings, CH_WATCHLIST);
    std::fs::write(env.dir.path().join("ch.key"), CH_KEY).unwrap();
    std::fs::write(env.dir.path().join("oc.token"), OC_TOKEN).unwrap();
    Ch::load().serve(&env.site);
    env.site.set(
        &format!("/api/v1/lei-records/{LEI}"),
        Page::json(fixture("gleif/lei_record.json").to_string()),
    );
    env.site.set(
        &format!("/v0.4/companies/gb/07654321?api_token={OC_TOKEN}"),
        Page::json(fixture("opencorporates/company.json").to_string()),
    );
    let dir = env.dir.path().to_path_buf();
    let run = move |args: Vec<&'static str>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let o = Command::new(BIN)
                .current_dir(&dir)
                .args(["--config", "pivotwatch.toml", "probe"])
                .args(args)
                .env("RUST_LOG", "off")
                .output()
                .expect("run pivotwatch");
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
    };
    let (code, out, err) = run(vec!["--adapter", "companies-house", "01234567"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "{}/company/01234567 → companies-house 01234567, HTTP 200, 4 requests, ",
            env.site.base()
        )) && first.ends_with(" bytes"),
        "{out}"
    );
    for line in [
        "field name: HARROWGATE METAL RECOVERY LIMITED",
        "field sic_codes: 1 value",
        "  SIC:38320",
        "field officers: 2 values",
        "  HALLORAN, Bridget Anne (director, appointed 2017-06-02, British, resident in England)",
        "field registered_address: Unit 4, Canal Street, Oldham, OL9 9ZZ, England",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in\n{out}");
    }
    assert!(!out.contains(CH_KEY) && !err.contains(CH_KEY));

    let (code, out, err) = run(vec!["--adapter", "gleif", LEI, "--json"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let rec: Value = serde_json::from_str(out.trim()).expect("one JSON record");
    assert_eq!(rec["fields"]["registration_status"], "ISSUED");
    assert_eq!(rec["fields"]["name"], "KESTREL COMPONENTS TRADING LTD");

    let (code, out, err) = run(vec!["--adapter", "opencorporates", "gb/07654321"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("field industry_codes: 1 value\n  SIC:38320\n"),
        "{out}"
    );
    assert!(
        !out.contains(OC_TOKEN) && !err.contains(OC_TOKEN),
        "{out}{err}"
    );

    let (code, _, err) = run(vec!["--adapter", "companies-house", "1234567"])
        .await
        .unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("keep the leading zeros"), "{err}");
}

#[test]
fn registry_hosts_get_their_published_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
    let settings = |extra: &str| {
        std::fs::write(
            dir.path().join("pivotwatch.toml"),
            format!("[http]\nper_host_interval = \"100ms\"\n{extra}"),
        )
        .unwrap();
        pivotwatch::config::Config::load_settings(&pivotwatch::config::LoadOptions {
            config: Some(dir.path().join("pivotwatch.toml")),
            watchlists: Some(dir.path().join("watchlists")),
            state_dir: None,
            check_address: Some(pivotwatch::alert::check_address),
        })
        .expect("settings")
    };
    let ms = |s: &pivotwatch::config::Settings, host: &str| {
        s.hosts
            .get(host)
            .and_then(|h| h.interval)
            .map(|d| d.as_millis())
    };
    let s = settings("");
    // 600 requests per 5 minutes; GLEIF about 60 a minute.
    assert_eq!(ms(&s, "api.company-information.service.gov.uk"), Some(500));
    assert_eq!(ms(&s, "api.gleif.org"), Some(1000));
    // A mirror gets them; an explicit [hosts] entry wins.
    let s = settings(
        "[registries.companies_house]\nbase_url = \"https://ch-mirror.example.org/api\"\n\
         [hosts.\"api.gleif.org\"]\ninterval = \"3s\"\n",
    );
    assert_eq!(ms(&s, "ch-mirror.example.org"), Some(500));
    assert_eq!(ms(&s, "api.gleif.org"), Some(3000));
    assert!(format!("{s:?}").contains("registries"));
    // The key never shows in a debug print of the settings.
    std::fs::write(dir.path().join("k"), CH_KEY).unwrap();
    let s = settings("[registries.companies_house]\napi_key_file = \"k\"\n");
    assert!(s.registries.companies_house.api_key.is_some());
    assert!(!format!("{s:?}").contains(CH_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companies_house_officers_past_one_page_are_all_read() {
    let env = Env::new().await;
    env.write(&ch_settings(), CH_WATCHLIST);
    std::fs::write(env.dir.path().join("ch.key"), CH_KEY).unwrap();
    let mut ch = Ch::load();
    let officer = |i: usize| {
        json!({"name": format!("OFFICER, Number {i:03}"), "officer_role": "director",
               "appointed_on": "2020-01-01", "links": {"self": format!("/x/{i}")}})
    };
    ch.officers["items"] = json!((0..100).map(officer).collect::<Vec<_>>());
    ch.officers["total_results"] = json!(101);
    ch.serve(&env.site);
    let mut page2 = ch.officers.clone();
    page2["items"] = json!([officer(100)]);
    page2["start_index"] = json!(100);
    env.site.set(
        "/company/01234567/officers?items_per_page=100&start_index=100",
        Page::json(page2.to_string()),
    );
    let r = env.once().await;
    assert_eq!(r[0].status, pivotwatch::record::CheckStatus::New, "{r:?}");
    assert_eq!(env.site.request_log().len(), 5, "two pages of officers");
    let snap = env
        .store()
        .latest_snapshot("harrowgate/ch")
        .unwrap()
        .expect("snapshot");
    match snap.record.fields.get("officers") {
        Some(pivotwatch::record::FieldValue::List(l)) => {
            assert_eq!(l.len(), 101);
            assert!(
                l.contains(&"OFFICER, Number 100 (director, appointed 2020-01-01)".to_string())
            );
        }
        other => panic!("{other:?}"),
    }
}
