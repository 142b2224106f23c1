//! Reference data and classification: which manufacturer made a catalogue item, what kind of
//! part it is, its HS code and its tier on the Common High Priority List (CHPL); and which
//! sector a registry activity code or activity text belongs to.
//!
//! The reference data are data files under `data/reference/` (CHPL tiers, activity codes,
//! manufacturers with aliases and part-number patterns, product families with keywords in
//! English, French and Russian). They are compiled into the binary with `include_str!`, so
//! [`Reference::embedded`] works with no file on disk; [`Reference::with_files`] then merges files
//! of the same names from a settings directory (read by `config::load_reference`) that add or
//! override entries, so analysts extend
//! the data without recompiling. Every invalid entry is reported as `path:line:col: message`.
//!
//! A [`Reference`] is built once (its phrase tables and the regex set of all part-number
//! patterns at load), is `Send + Sync`, and is meant to be shared behind an `Arc`.
//! Classifying an item builds no table; it folds the item's own text, and the first item
//! that a part-number pattern matches builds that pattern's own regex, once.
//!
//! **Boundary:** pure. No I/O (the caller reads the settings files), no network, no store,
//! and no knowledge of sources or watchlists.

mod activity;
mod data;
mod error;
mod item;
mod keywords;
mod normalize;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use data::ExtraFile;
pub use error::RefDataError;

use keywords::{KeywordSet, PhraseMatcher};

/// A tier of the Common High Priority List.
///
/// The order follows the tier numbers: `T1 < T2 < T3A < T3B < T4A < T4B`, so the *most
/// severe* tier of a set is its **minimum** (sorting ascending puts Tier 1 first). Use
/// [`Tier::is_more_severe_than`] when that reads better.
///
/// Serialised as the CHPL writes it: `"1"`, `"2"`, `"3.A"`, `"3.B"`, `"4.A"`, `"4.B"`.
/// Displayed as `"Tier 1"`, `"Tier 3.A"`…
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Tier 1: integrated circuits (8542.31/.32/.33/.39), the highest concern.
    T1,
    /// Tier 2: other electronics (network equipment, GNSS, tantalum and ceramic capacitors).
    T2,
    /// Tier 3.A: other electronic components with a broader supplier base.
    T3A,
    /// Tier 3.B: mechanical and other components (bearings, aircraft parts, optics).
    T3B,
    /// Tier 4.A: manufacturing, production and test equipment for electronics.
    T4A,
    /// Tier 4.B: CNC machine tools and their parts.
    T4B,
}

impl Tier {
    /// Every tier, most severe first.
    pub const ALL: [Tier; 6] = [
        Tier::T1,
        Tier::T2,
        Tier::T3A,
        Tier::T3B,
        Tier::T4A,
        Tier::T4B,
    ];

    /// The tier as the CHPL writes it: `"1"`, `"3.A"`…
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::T1 => "1",
            Tier::T2 => "2",
            Tier::T3A => "3.A",
            Tier::T3B => "3.B",
            Tier::T4A => "4.A",
            Tier::T4B => "4.B",
        }
    }

    /// Whether `self` is of higher concern than `other` (Tier 1 beats everything).
    pub fn is_more_severe_than(self, other: Tier) -> bool {
        self < other
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tier {}", self.as_str())
    }
}

/// The text is not a CHPL tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CHPL tier '{0}' (expected 1, 2, 3.A, 3.B, 4.A or 4.B)")]
pub struct ParseTierError(pub String);

impl FromStr for Tier {
    type Err = ParseTierError;

    /// Accepts `"1"`, `"3.A"`, `"3A"`, `"3a"`, `"T3A"`, `"Tier 3.A"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        let core = compact
            .strip_prefix("TIER")
            .or_else(|| compact.strip_prefix('T'))
            .unwrap_or(&compact);
        match core {
            "1" => Ok(Tier::T1),
            "2" => Ok(Tier::T2),
            "3A" => Ok(Tier::T3A),
            "3B" => Ok(Tier::T3B),
            "4A" => Ok(Tier::T4A),
            "4B" => Ok(Tier::T4B),
            _ => Err(ParseTierError(s.to_string())),
        }
    }
}

impl Serialize for Tier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The broad sector an activity code belongs to, as far as pivots are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    /// Waste, scrap, recovery and metals trade.
    ScrapMetals,
    /// Wholesale or retail of electronic components, computers and telecom equipment.
    ElectronicsTrade,
    /// Manufacture or repair of electronic components, boards and equipment.
    ElectronicsManufacture,
    /// Machinery and machine tools, and cover categories such as "industrial automation".
    DualUseMachinery,
    /// Non-specialised trade, agents and shell-like business support.
    GenericTrading,
    /// Warehousing, cargo handling, freight forwarding and transport.
    Logistics,
    /// Anything else.
    Other,
}

impl Sector {
    /// Every sector.
    pub const ALL: [Sector; 7] = [
        Sector::ScrapMetals,
        Sector::ElectronicsTrade,
        Sector::ElectronicsManufacture,
        Sector::DualUseMachinery,
        Sector::GenericTrading,
        Sector::Logistics,
        Sector::Other,
    ];

    /// The snake_case name used in data files and JSON (`"scrap_metals"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::ScrapMetals => "scrap_metals",
            Sector::ElectronicsTrade => "electronics_trade",
            Sector::ElectronicsManufacture => "electronics_manufacture",
            Sector::DualUseMachinery => "dual_use_machinery",
            Sector::GenericTrading => "generic_trading",
            Sector::Logistics => "logistics",
            Sector::Other => "other",
        }
    }

    /// Whether the sector trades or makes electronics.
    pub fn is_electronics(self) -> bool {
        matches!(
            self,
            Sector::ElectronicsTrade | Sector::ElectronicsManufacture
        )
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sector::ScrapMetals => "scrap, waste and metals",
            Sector::ElectronicsTrade => "electronics trade",
            Sector::ElectronicsManufacture => "electronics manufacture",
            Sector::DualUseMachinery => "machinery (dual-use)",
            Sector::GenericTrading => "generic trading",
            Sector::Logistics => "logistics",
            Sector::Other => "other",
        })
    }
}

/// The text is not a sector name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown sector '{0}' (expected scrap_metals, electronics_trade, electronics_manufacture, dual_use_machinery, generic_trading, logistics or other)"
)]
pub struct ParseSectorError(pub String);

impl FromStr for Sector {
    type Err = ParseSectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Sector::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseSectorError(s.to_string()))
    }
}

/// How the manufacturer of an item was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchVia {
    /// From the catalogue's brand (manufacturer) column.
    Brand,
    /// From a manufacturer name in the item's name or other text.
    Text,
    /// From a manufacturer's part-number pattern.
    PartNumber,
}

impl fmt::Display for MatchVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchVia::Brand => "brand",
            MatchVia::Text => "text",
            MatchVia::PartNumber => "part number",
        })
    }
}

/// What the classifier concluded about one catalogue item.
///
/// Every field is optional except the confidence: a non-electronic item (scrap, ingots) has
/// no manufacturer, no family, no HS code and no tier. `reasons` says in plain words how each
/// field was reached, for findings and `explain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemClass {
    /// Canonical name of the current owner of the brand ("AMD" for a Xilinx part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Head-office country of that manufacturer (ISO 3166 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_country: Option<String>,
    /// Where the manufacturer came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_via: Option<MatchVia>,
    /// The acquired or renamed brand that led to the manufacturer ("Xilinx"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_brand: Option<String>,
    /// Product family id from `families.toml` ("mcu", "fpga", "memory", "gnss_module"…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Human label of the family ("FPGA", "Microcontroller (MCU)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_label: Option<String>,
    /// HS-6 code, dotted ("8542.31").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_code: Option<String>,
    /// CHPL tier of the HS code, when it is on the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chpl_tier: Option<Tier>,
    /// The normalised part number whose pattern matched ("TMS320F28335"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<String>,
    /// Whether that manufacturer is from the export-control coalition (see
    /// [`Manufacturer::coalition`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_coalition: Option<bool>,
    /// 0 (nothing known) to 1 (brand and part-number pattern agree).
    pub confidence: f32,
    /// How sure the product family (and so the HS code and tier) is, 0 to 1.
    #[serde(default)]
    pub family_confidence: f32,
    /// How sure the manufacturer is, 0 to 1.
    #[serde(default)]
    pub maker_confidence: f32,
    /// Human-readable reasons, one per step ("brand 'Xilinx' → AMD (acquired 2022)").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl ItemClass {
    /// Whether the item is CHPL goods, at any confidence (see [`ItemClass::verdict`]).
    pub fn is_controlled(&self) -> bool {
        self.verdict(0.0).controlled
    }

    /// The one verdict on an item, used by the rules, `explain`, the findings, the
    /// e-mail and the status page alike.
    ///
    /// **Controlled** means CHPL goods: the product family gives an HS code on the list,
    /// at `min_confidence` or more. Who made it does not matter: an LM317 is Tier 1
    /// whether TI, HGSEMI or nobody is named. The **maker** is attributed only at
    /// `min_confidence` or more (a brand, a maker named in the text, or a maker's own
    /// part-number prefix; never an industry-standard number alone), and counts as a
    /// **coalition maker** when its head office is in the export-control coalition.
    pub fn verdict(&self, min_confidence: f32) -> ItemVerdict {
        let controlled = self.chpl_tier.is_some() && self.family_confidence >= min_confidence;
        let maker = self
            .manufacturer
            .clone()
            .filter(|_| self.maker_confidence >= min_confidence);
        ItemVerdict {
            controlled,
            tier: self.chpl_tier.filter(|_| controlled),
            coalition_maker: maker.is_some() && self.manufacturer_coalition == Some(true),
            country: maker.as_ref().and(self.manufacturer_country.clone()),
            maker,
        }
    }
}

/// What [`ItemClass::verdict`] decides about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemVerdict {
    /// CHPL goods (an HS code on the list), at the confidence asked.
    pub controlled: bool,
    /// The CHPL tier, when controlled.
    pub tier: Option<Tier>,
    /// The manufacturer the item is attributed to, when sure enough.
    pub maker: Option<String>,
    /// That manufacturer's head-office country.
    pub country: Option<String>,
    /// The manufacturer is from the export-control coalition.
    pub coalition_maker: bool,
}

/// How an activity match was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivityVia {
    /// The code itself is in the table.
    #[default]
    Code,
    /// The code is not in its scheme's table but maps to an equivalent class (a UK SIC
    /// subclass read as its NACE class, an NMA code written as NACE, a longer national code).
    Equivalent,
    /// The text is (or contains, or is part of) an official label.
    Label,
    /// The text contains a keyword of the class ("ferraille", "composants électroniques").
    Keyword,
}

/// One activity class that a code or a label matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityMatch {
    /// Scheme: `NACE` (Rev.2), `NACE21` (Rev.2.1), `SIC` (UK SIC 2007), `ISIC` (Rev.4),
    /// `NMA` (Morocco 2010) or `NACE11` (Rev.1.1).
    pub scheme: String,
    /// The code as its scheme prints it ("46.77", "46770", "4669").
    pub code: String,
    /// English label.
    pub label: String,
    /// The sector of the class.
    pub sector: Sector,
    /// How the match was found.
    #[serde(default)]
    pub via: ActivityVia,
}

impl ActivityMatch {
    /// `SCHEME:CODE`, as watchlists write it.
    pub fn key(&self) -> String {
        format!("{}:{}", self.scheme, self.code)
    }
}

/// One row of the activity-code table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCode {
    /// Scheme (see [`ActivityMatch::scheme`]).
    pub scheme: String,
    /// Code as the scheme prints it.
    pub code: String,
    /// Sector of the class.
    pub sector: Sector,
    /// English label.
    pub label_en: String,
    /// French label.
    pub label_fr: String,
    /// Keywords that map free text to this class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Provenance and caveats.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One CHPL entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChplEntry {
    /// Six digits, no dot ("854231").
    pub hs6: String,
    /// Tier on the list.
    pub tier: Tier,
    /// Description of the subheading.
    pub description: String,
}

impl ChplEntry {
    /// The code dotted as customs write it ("8542.31").
    pub fn hs_dotted(&self) -> String {
        dotted_hs(&self.hs6)
    }
}

/// An acquired, merged or renamed brand of a manufacturer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyBrand {
    /// Brand name ("Xilinx").
    pub name: String,
    /// Other spellings of the brand.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Spellings matched only as a whole brand column, never in free text.
    #[serde(default)]
    pub brand_only: Vec<String>,
    /// `acquired`, `renamed`, `spun off` or `merged`.
    pub relation: String,
    /// Year of the change.
    #[serde(default)]
    pub year: Option<u16>,
    /// Caveats.
    #[serde(default)]
    pub note: Option<String>,
}

/// A part-number pattern of a product line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPattern {
    /// Regex, matched from the start of the normalised part number.
    pub pattern: String,
    /// Family id.
    pub family: String,
    /// HS-6 override (else the family's).
    #[serde(default)]
    pub hs6: Option<String>,
    /// Legacy brand the line comes from.
    #[serde(default)]
    pub brand: Option<String>,
    /// Other vendors use the same prefix.
    #[serde(default)]
    pub shared: bool,
    /// Also applied to part numbers found in free text.
    pub text: bool,
    /// Rank among overlapping patterns (higher wins).
    #[serde(default)]
    pub priority: i32,
    /// Provenance and examples.
    #[serde(default)]
    pub note: Option<String>,
}

/// A manufacturer of the reference list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manufacturer {
    /// Canonical name ("Texas Instruments").
    pub canonical: String,
    /// Head-office country, ISO 3166 alpha-2 ("US").
    pub country: String,
    /// From a country of the export-control coalition (US, EU, UK, Japan, Korea, Taiwan,
    /// Switzerland…); `false` for second sources (China, Russia, Belarus, India…), whose
    /// parts are never called Western.
    #[serde(default)]
    pub coalition: bool,
    /// Other names of the current company.
    pub aliases: Vec<String>,
    /// Names matched only as a whole brand column, never in free text.
    #[serde(default)]
    pub brand_only: Vec<String>,
    /// Acquired, merged and renamed brands.
    #[serde(default)]
    pub legacy: Vec<LegacyBrand>,
    /// Part-number patterns.
    #[serde(default)]
    pub patterns: Vec<PartPattern>,
    /// Caveats.
    #[serde(default)]
    pub note: Option<String>,
}

/// A product family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// Id ("fpga").
    pub id: String,
    /// Label ("FPGA").
    pub label: String,
    /// HS-6 code, six digits.
    pub hs6: String,
    /// Phrases naming the family (EN/FR/RU).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Phrases that cancel a keyword hit.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Tie-break among families with equally long keyword hits.
    #[serde(default)]
    pub priority: i32,
    /// A product that carries other makers' parts (a development board, a kit): part
    /// numbers found in its text name components on it, not the product, so they give
    /// neither its maker nor its family.
    #[serde(default)]
    pub carrier: bool,
}

/// `"854231"` → `"8542.31"`.
pub fn dotted_hs(hs6: &str) -> String {
    if hs6.len() == 6 && hs6.is_ascii() {
        format!("{}.{}", &hs6[..4], &hs6[4..])
    } else {
        hs6.to_string()
    }
}

/// Which manufacturer (and which of its legacy brands) a name points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) mfr: usize,
    pub(crate) legacy: Option<usize>,
}

/// A compiled part-number pattern.
#[derive(Debug)]
pub(crate) struct CompiledPattern {
    /// The pattern anchored at the start (`^(?:…)`), as in the regex set.
    pub(crate) anchored: String,
    /// Built on first use: `None` if it cannot be (the regex set, with the same
    /// options and limit, was built from it, so this is not expected).
    pub(crate) regex: std::sync::OnceLock<Option<regex::bytes::Regex>>,
    /// `None` for generic patterns.
    pub(crate) owner: Option<Owner>,
    pub(crate) family: usize,
    pub(crate) hs6: String,
    pub(crate) shared: bool,
    pub(crate) text: bool,
    pub(crate) priority: i32,
}

impl CompiledPattern {
    /// The options of every part-number regex (those of the regex set).
    pub(crate) fn build(anchored: &str) -> Result<regex::bytes::Regex, regex::Error> {
        regex::bytes::RegexBuilder::new(anchored)
            .unicode(false)
            .case_insensitive(true)
            .size_limit(128 << 20)
            .build()
    }

    /// Where this pattern's leftmost match in `text` ends (0: none).
    pub(crate) fn match_len(&self, text: &[u8]) -> usize {
        let re = self.regex.get_or_init(|| match Self::build(&self.anchored) {
            Ok(re) => Some(re),
            Err(e) => {
                tracing::warn!(pattern = %self.anchored, error = %e, "A part-number pattern cannot be built on its own; its match counts as empty.");
                None
            }
        });
        re.as_ref()
            .and_then(|re| re.find(text))
            .map(|m| m.end())
            .unwrap_or(0)
    }
}

/// Compiled activity table.
#[derive(Debug)]
pub(crate) struct ActivityTable {
    pub(crate) rows: Vec<ActivityCode>,
    /// (scheme, digits) → rows.
    pub(crate) by_code: HashMap<(String, String), Vec<usize>>,
    /// folded label (EN or FR) → rows.
    pub(crate) by_label: HashMap<String, Vec<usize>>,
    /// (folded label words, row), for containment checks.
    pub(crate) labels: Vec<(String, usize)>,
    /// Keyword phrases, tagged with rows.
    pub(crate) keywords: KeywordSet,
}

/// The compiled reference data. Build once with [`Reference::embedded`] or
/// `config::load_reference` and share it (`Arc<Reference>`); it is `Send + Sync`.
#[derive(Debug)]
pub struct Reference {
    pub(crate) chpl: BTreeMap<String, ChplEntry>,
    pub(crate) activities: ActivityTable,
    pub(crate) manufacturers: Vec<Manufacturer>,
    pub(crate) by_canonical: HashMap<String, usize>,
    /// Compact brand key → owner and the name as written.
    pub(crate) brand_keys: HashMap<String, (Owner, String)>,
    /// Every name as words, for abbreviation lookups ("Texas Instr." → "Texas Instruments").
    pub(crate) brand_words: Vec<(Vec<String>, Owner, String)>,
    /// Every alias, for names inside a brand column ("Xilinx Inc. (AMD)").
    pub(crate) brand_phrases: PhraseMatcher,
    /// Aliases safe to look for in free text.
    pub(crate) text_phrases: PhraseMatcher,
    pub(crate) placeholders: HashSet<String>,
    pub(crate) patterns: Vec<CompiledPattern>,
    pub(crate) pattern_set: regex::bytes::RegexSet,
    pub(crate) families: Vec<Family>,
    pub(crate) family_index: HashMap<String, usize>,
    pub(crate) family_keywords: KeywordSet,
    pub(crate) family_excludes: KeywordSet,
    pub(crate) scrap_markers: KeywordSet,
}

impl Reference {
    /// The reference data shipped with pivotwatch (compiled into the binary).
    pub fn embedded() -> Result<Reference, RefDataError> {
        Self::with_files(Vec::new())
    }

    /// The shipped data, then `extra`: settings files of the same names
    /// (`chpl.csv`, `activity_codes.csv`, `manufacturers.toml`, `families.toml`, …, as
    /// `config::load_reference` reads them from `[reference] dir`), each of which adds
    /// entries or overrides entries with the same key. Every invalid entry of every file
    /// is reported, each with its `path:line:col` (or `path:line` for CSV).
    pub fn with_files(extra: Vec<data::ExtraFile>) -> Result<Reference, RefDataError> {
        data::load(extra)
    }

    /// The names of the data files `config::load_reference` reads from a settings directory.
    pub fn file_names() -> &'static [&'static str] {
        data::FILE_NAMES
    }

    /// Classify one catalogue item from its name, brand column, part-number column and any
    /// other text of the same item (description, category).
    ///
    /// Evidence, strongest first: the brand column (a known brand always wins; an unknown
    /// one blocks attribution to another maker), a maker named in the text, then the
    /// part-number patterns (a prefix shared by several makers gives lower confidence, or no
    /// maker when they tie). The family, HS code and CHPL tier come from the pattern, else
    /// from product words in the text (English, French, Russian). Text that marks the item
    /// as scrap or waste ("ferraille", "лом") switches off every clue taken from free text,
    /// so pass item-level text in `extra_text`, not page boilerplate.
    pub fn classify_item(
        &self,
        name: Option<&str>,
        manufacturer: Option<&str>,
        part_number: Option<&str>,
        extra_text: &[&str],
    ) -> ItemClass {
        item::classify(self, name, manufacturer, part_number, extra_text)
    }

    /// Classify an activity code or activity text.
    ///
    /// Accepts `SCHEME:CODE` (`"NACE:46.77"`, `"SIC:46770"`, `"ISIC:4669"`, `"NMA:4669"`),
    /// a bare code (`"46.77"` NACE, `"46770"` UK SIC, `"4669"` ISIC/NMA, `"4677Z"` French NAF),
    /// or English/French label text ("Commerce de gros de déchets et débris") and free
    /// activity descriptions ("import-export de ferraille"). Returns every matching class;
    /// empty when nothing matches.
    pub fn classify_activity(&self, code_or_label: &str) -> Vec<ActivityMatch> {
        activity::classify(self, code_or_label)
    }

    /// The CHPL entry of an HS code. Accepts 6 or more digits, dotted or not ("8542.31",
    /// "854231", "8542.31.00.01"): the first six digits decide.
    pub fn chpl(&self, hs6: &str) -> Option<&ChplEntry> {
        let digits: String = hs6.chars().filter(|c| c.is_ascii_digit()).take(6).collect();
        if digits.len() != 6 {
            return None;
        }
        self.chpl.get(&digits)
    }

    /// Every CHPL entry, by HS code.
    pub fn chpl_entries(&self) -> impl Iterator<Item = &ChplEntry> {
        self.chpl.values()
    }

    /// A manufacturer by canonical name; also accepts any alias or legacy brand, ignoring
    /// case and punctuation ("Xilinx" gives AMD).
    pub fn manufacturer(&self, canonical: &str) -> Option<&Manufacturer> {
        if let Some(&i) = self.by_canonical.get(canonical) {
            return self.manufacturers.get(i);
        }
        let key = normalize::brand_key(canonical);
        self.brand_keys
            .get(&key)
            .and_then(|(o, _)| self.manufacturers.get(o.mfr))
    }

    /// The manufacturer a catalogue's brand column names: a canonical name, alias or legacy
    /// brand, an abbreviation of one ("Texas Instrumen"), or a known name inside a longer
    /// brand ("Xilinx Inc. (AMD)"). `None` for placeholders ("N/A") and unknown brands.
    pub fn brand(&self, brand: &str) -> Option<&Manufacturer> {
        item::brand_owner(self, brand).and_then(|i| self.manufacturers.get(i))
    }

    /// The manufacturers named in free text (a page, a company description), by the names
    /// distinctive enough for free text (never the short brand-column-only ones such as
    /// "TI" or "ST"), in order of appearance, each once, with the name as written in the
    /// data.
    pub fn makers_in_text(&self, text: &str) -> Vec<(&Manufacturer, &str)> {
        let folded = normalize::match_words(text, false);
        let hay = normalize::haystack(folded.split(' ').filter(|w| !w.is_empty()));
        let mut seen = HashSet::new();
        self.text_phrases
            .find_all(&hay)
            .into_iter()
            .filter(|(o, _)| seen.insert(o.mfr))
            .filter_map(|(o, alias)| self.manufacturers.get(o.mfr).map(|m| (m, alias)))
            .collect()
    }

    /// The product families named by words in free text (English, French, Russian,
    /// German), each once, longest phrase first; a family whose exclusion phrase occurs
    /// ("memory card") is left out.
    pub fn families_in_text(&self, text: &str) -> Vec<&Family> {
        let folded = normalize::match_words(text, false);
        let hay = normalize::haystack(
            folded
                .split(' ')
                .filter(|w| !w.is_empty() && !normalize::is_stopword(w)),
        );
        let excluded: HashSet<usize> = self.family_excludes.hits(&hay).map(|e| e.tag).collect();
        let mut hits: Vec<_> = self
            .family_keywords
            .hits(&hay)
            .filter(|e| !excluded.contains(&e.tag))
            .collect();
        hits.sort_by(|a, b| b.words.cmp(&a.words).then(a.tag.cmp(&b.tag)));
        let mut seen = HashSet::new();
        hits.into_iter()
            .filter(|e| seen.insert(e.tag))
            .filter_map(|e| self.families.get(e.tag))
            .collect()
    }

    /// Every manufacturer, in file order.
    pub fn manufacturers(&self) -> &[Manufacturer] {
        &self.manufacturers
    }

    /// A product family by id.
    pub fn family(&self, id: &str) -> Option<&Family> {
        self.family_index
            .get(id)
            .and_then(|&i| self.families.get(i))
    }

    /// Every product family, in file order.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Every activity-code row.
    pub fn activity_codes(&self) -> &[ActivityCode] {
        &self.activities.rows
    }
}
