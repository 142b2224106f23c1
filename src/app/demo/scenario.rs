//! The built-in scenario: Atlas Métaux SARL, a (fictional) Tangier firm
//! registered for wholesale of waste and scrap, whose web catalogue starts
//! listing Western processors. Two states: `before` and `after`.

/// The registry record (same in both states: the registry still says scrap).
pub(super) fn registry(footer_stamp: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Registre du commerce — 84213</title>
<script>window.analytics = {{ session: "{footer_stamp}" }};</script></head>
<body><nav><a href="/">Accueil</a> · <a href="/recherche">Recherche</a></nav>
<main><h1 class="denomination">Atlas Métaux SARL</h1>
<table class="fiche">
<tr><th>RC</th><td class="rc">Tanger 84213</td></tr>
<tr><th>ICE</th><td class="ice">001525416000065</td></tr>
<tr><th>Forme juridique</th><td class="forme">Société à responsabilité limitée</td></tr>
<tr><th>Activité</th><td class="activite">Commerce de gros de déchets et débris (NACE 46.77)</td></tr>
<tr><th>Capital</th><td class="capital">100 000 MAD</td></tr>
<tr><th>Siège</th><td class="adresse">Zone Franche d'Exportation, Lot 112, Tanger</td></tr>
</table>
<h2>Gérants</h2><ul class="gerants"><li>Karim  El Idrissi</li><li>Youssef Benali</li></ul>
</main><footer>Page générée le {footer_stamp}</footer></body></html>"#
    )
}

struct Row(&'static str, &'static str, &'static str, &'static str);

const SCRAP: &[Row] = &[
    Row(
        "Ferraille lourde E3, lot 20 t",
        "—",
        "FER-E3-20",
        "2 400 MAD/t",
    ),
    Row(
        "Cuivre dénudé (millberry), 1 t",
        "—",
        "CU-MB-1",
        "71 000 MAD/t",
    ),
    Row(
        "Aluminium profilé 6063, chutes",
        "—",
        "AL-6063-CH",
        "14 500 MAD/t",
    ),
    Row("Batteries plomb usagées", "—", "PB-BAT-U", "6 100 MAD/t"),
    Row("Câbles cuivre sous gaine", "—", "CU-CAB-G", "38 000 MAD/t"),
];

const CHIPS: &[Row] = &[
    Row(
        "DSP C2000 Delfino 32 bits, 150 MHz",
        "Texas Instruments",
        "TMS320F28335PGFA",
        "310 MAD",
    ),
    Row(
        "Microcontrôleur MSP430 16 bits",
        "T.I.",
        "MSP430F1611IPMR",
        "95 MAD",
    ),
    Row(
        "FPGA Cyclone IV E, 22k LE",
        "Intel (Altera)",
        "EP4CE22F17C8N",
        "420 MAD",
    ),
    Row(
        "Processeur i.MX 6Quad, 1 GHz",
        "NXP",
        "MCIMX6Q5EYM10AC",
        "690 MAD",
    ),
    Row("FPGA Artix-7 35T", "Xilinx", "XC7A35T-1CSG324C", "560 MAD"),
    Row(
        "Mémoire NOR Flash 128 Mb",
        "Micron",
        "MT25QL128ABA1ESE",
        "48 MAD",
    ),
];

fn rows(rows: &[&Row]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "<tr><td class=\"designation\">{}</td><td class=\"marque\">{}</td><td class=\"reference\">{}</td><td class=\"prix\">{}</td><td><a href=\"/produits/{}\">voir</a></td></tr>\n",
                r.0,
                r.1,
                r.2,
                r.3,
                r.2.to_lowercase()
            )
        })
        .collect()
}

/// Catalogue page `page` (1 or 2) in the given state. Page 2 holds the last
/// rows; `after` adds the processors and reorders the scrap rows.
pub(super) fn catalogue(page: u32, after: bool, footer_stamp: &str) -> String {
    let mut list: Vec<&Row> = SCRAP.iter().collect();
    if after {
        list.reverse(); // row order is noise, not a change
        list.extend(CHIPS.iter());
    }
    let split = 3.min(list.len());
    let (this, next) = if page == 1 {
        (&list[..split], Some("/produits?page=2"))
    } else {
        (&list[split..], None)
    };
    let next_link = next
        .map(|n| format!("<a class=\"suivant\" href=\"{n}\">Page suivante »</a>"))
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Atlas Métaux — Produits</title>
<style>table {{ border: 1px solid #ccc }}</style></head>
<body><header><a href="/">Atlas Métaux</a> — récupération et négoce de métaux</header>
<aside class="promo">Promotion du {footer_stamp} : enlèvement gratuit à Tanger</aside>
<table class="produits"><thead><tr><th>Désignation</th><th>Marque</th><th>Référence</th><th>Prix</th><th></th></tr></thead>
<tbody>
{}</tbody></table>
<nav class="pages">{next_link}</nav>
<footer>Mis à jour le {footer_stamp}</footer></body></html>"#,
        rows(this)
    )
}

/// The demo watchlist, with `{BASE}` standing for the site's address.
pub(super) const WATCHLIST: &str = r#"# The demo's watchlist: one entity, its registry record and its catalogue.
[watchlist]
name = "demo"
description = "Built-in scenario: a Tangier scrap dealer's catalogue"
maintainers = ["analyst@example.org"]
tags = ["morocco"]
schedule = "0 */6 * * *"
timezone = "Africa/Casablanca"

[[entity]]
id = "atlas-metaux"
name = "Atlas Métaux SARL"
aliases = ["Atlas Metaux"]
jurisdiction = "MA"
identifiers = { ice = "001525416000065", rc = "Tanger 84213" }
activity = ["NACE:46.77"]
tags = ["scrap"]

[[entity.source]]
id = "registry"
kind = "registry"
url = "{BASE}/rc/84213"
[entity.source.fields]
name = "h1.denomination"
activity = "td.activite"
address = "td.adresse"
capital = "td.capital"
officers = { selector = "ul.gerants li", all = true }

[[entity.source]]
id = "catalogue"
kind = "catalogue"
url = "{BASE}/produits"
[entity.source.items]
row = "table.produits tbody tr"
name = "td.designation"
manufacturer = "td.marque"
part_number = "td.reference"
price = "td.prix"
link = { selector = "a", attr = "href" }
next_page = { selector = "a.suivant", attr = "href" }
max_pages = 5
"#;
