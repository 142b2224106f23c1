//! `pivotwatch import FILE.csv`: a spreadsheet with awkward rows becomes
//! watchlist entities with adapter sources, validated by `check`.

use crate::support::process::{at, pivotwatch, stderr, stdout};

const EXISTING: &str = r#"[watchlist]
name = "other"

[[entity]]
id = "kestrel-components-trading-ltd"
name = "Kestrel (site only)"
[[entity.source]]
id = "site"
url = "https://kestrel.example/"
[entity.source.fields]
title = "title"

[[entity]]
id = "bramley"
name = "Bramley Salvage"
[[entity.source]]
id = "oc"
adapter = "opencorporates"
jurisdiction = "gb"
company_number = "07654321"
"#;

/// BOM, semicolons, a quoted cell holding the delimiter and a comma,
/// empty cells, a blank row, a duplicate, a company already watched.
const CSV: &str = "\u{feff}Name;Country;Company number;LEI;Website;Tags\r\n\
Harrowgate Metal Recovery;GB;01234567;;harrowgate.example;scrap, uk\r\n\
\"Kestrel Components Trading; Ltd\";CY;HE123456;9845001KESTREL0TR019;https://kestrel.example/;\"electronics,cyprus\"\r\n\
;;;;;\r\n\
Harrowgate Metal Recovery Ltd;GB;1234567X;;;\r\n";

#[test]
fn a_spreadsheet_imports_and_check_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("watchlists")).unwrap();
    std::fs::write(d.join("watchlists/other.toml"), EXISTING).unwrap();
    // The last row's number is wrong: nothing is written, the error is located.
    std::fs::write(d.join("suppliers.csv"), CSV).unwrap();
    let o = pivotwatch(
        d,
        &["--watchlists", "watchlists", "import", "suppliers.csv"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let text = CSV.strip_prefix('\u{feff}').unwrap();
    let loc = at("suppliers.csv", text, "1234567X");
    assert!(
        stderr(&o).contains(&format!(
            "{loc}: company number \"1234567X\" is not a Companies House number"
        )),
        "{loc} in {}",
        stderr(&o)
    );
    assert!(!d.join("watchlists/suppliers.toml").exists());

    // Fixed: the last row now repeats the first (skipped, saying so).
    let csv = CSV.replace("1234567X", "01234567");
    std::fs::write(d.join("suppliers.csv"), &csv).unwrap();
    let o = pivotwatch(
        d,
        &[
            "--watchlists",
            "watchlists",
            "import",
            "suppliers.csv",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("suppliers.csv:5: skipped: a duplicate of line 2 (same company number)"),
        "{}",
        stderr(&o)
    );
    let toml = stdout(&o);
    assert_eq!(
        toml,
        r#"[watchlist]
name = "suppliers"
description = "Imported from suppliers.csv"

# Imported from suppliers.csv line 2.
[[entity]]
id = "harrowgate-metal-recovery"
name = "Harrowgate Metal Recovery"
jurisdiction = "GB"
tags = ["scrap", "uk"]
[entity.identifiers]
company_number = "01234567"

[[entity.source]]
id = "companies-house"
adapter = "companies-house"
company_number = "01234567"

# The whole website, no selectors (`pivotwatch probe --site https://harrowgate.example/` shows what it finds).
[[entity.source]]
id = "website"
kind = "site"
url = "https://harrowgate.example/"

# Imported from suppliers.csv line 3.
[[entity]]
id = "kestrel-components-trading-ltd-2"
name = "Kestrel Components Trading; Ltd"
jurisdiction = "CY"
tags = ["electronics", "cyprus"]
[entity.identifiers]
company_number = "HE123456"
lei = "9845001KESTREL0TR019"

[[entity.source]]
id = "opencorporates"
adapter = "opencorporates"
jurisdiction = "cy"
company_number = "HE123456"

[[entity.source]]
id = "gleif"
adapter = "gleif"
lei = "9845001KESTREL0TR019"

# The whole website, no selectors (`pivotwatch probe --site https://kestrel.example/` shows what it finds).
[[entity.source]]
id = "website"
kind = "site"
url = "https://kestrel.example/"
"#
    );
    assert!(!d.join("watchlists/suppliers.toml").exists(), "dry run");

    let o = pivotwatch(
        d,
        &["--watchlists", "watchlists", "import", "suppliers.csv"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.join("watchlists/suppliers.toml")).unwrap(),
        toml
    );
    let o = pivotwatch(d, &["--watchlists", "watchlists", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Extending: a second sheet adds one company, and skips the watched.
    std::fs::write(
        d.join("more.csv"),
        "name,country,company number,lei\n\
         Bramley Salvage,GB,07654321,\n\
         Harrowgate again,GB,01234567,\n\
         \"Orme, Vale & Sons\",gb,SC123456,\n",
    )
    .unwrap();
    let o = pivotwatch(
        d,
        &[
            "--watchlists",
            "watchlists",
            "import",
            "more.csv",
            "--into",
            "watchlists/suppliers.toml",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "more.csv:3: skipped: already watched as entity \"harrowgate-metal-recovery\""
        ),
        "{err}"
    );
    let written = std::fs::read_to_string(d.join("watchlists/suppliers.toml")).unwrap();
    assert!(written.starts_with(&toml), "extended, not replaced");
    assert!(
        written.contains(
            "id = \"orme-vale-sons\"\nname = \"Orme, Vale & Sons\"\njurisdiction = \"GB\"\n"
        ),
        "{written}"
    );
    assert!(written.contains("adapter = \"companies-house\"\ncompany_number = \"SC123456\"\n"));
    // Bramley's company number 07654321 is watched through OpenCorporates
    // (a GB number in other.toml), so it is skipped too.
    assert!(
        err.contains("more.csv:2: skipped: already watched as entity \"bramley\""),
        "{err}"
    );
    let o = pivotwatch(d, &["--watchlists", "watchlists", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn bad_rows_are_reported_with_their_locations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = "name,country,company number,lei,website\n\
               ,GB,01234567,,\n\
               Acme,,12345,,\n\
               Beta,GB,,9845001KESTREL0TR018,\n\
               Gamma,GB,,,ftp://gamma.example\n\
               Delta,GB,,,,extra\n\
               Epsilon,FR,,,\n";
    std::fs::write(d.join("bad.csv"), csv).unwrap();
    let o = pivotwatch(d, &["import", "bad.csv", "--dry-run"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(stdout(&o).is_empty(), "nothing printed on error");
    for (line, col, msg) in [
        (2, 1, "the name is empty"),
        (3, 6, "company number \"12345\" needs a country"),
        (4, 10, "LEI \"9845001KESTREL0TR018\" fails its check digits"),
        (
            5,
            12,
            "website \"ftp://gamma.example\" is not an http(s) address",
        ),
        (6, 13, "6 cells where the header has 5"),
        (7, 1, "\"Epsilon\" has no company number, LEI or website"),
    ] {
        let want = format!("bad.csv:{line}:{col}: {msg}");
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{want} not in\n{err}"
        );
    }
}
