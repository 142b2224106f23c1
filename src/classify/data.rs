//! Reading, merging, validating and compiling the reference data files.
//!
//! The shipped files are compiled in with `include_str!`; files of the same names in a
//! settings directory are merged over them. Parsing collects every syntax error of every
//! file; compiling then collects every semantic error (bad regex, unknown family, alias
//! claimed twice…), each with its `path:line[:col]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::activity::{canonical_scheme, code_key};
use super::keywords::{KeywordSetBuilder, PhraseMatcherBuilder};
use super::normalize::{brand_key, brand_words, fold};
use super::{
    ActivityCode, ActivityTable, ChplEntry, CompiledPattern, Family, LegacyBrand, Manufacturer,
    Owner, PartPattern, RefDataError, Reference, Sector, Tier,
};

/// The data files, in the order they are read.
pub(crate) const FILE_NAMES: &[&str] = &[
    "chpl.csv",
    "activity_codes.csv",
    "families.toml",
    "manufacturers.toml",
];

/// Where the shipped files live in the source tree (shown in error locations).
const EMBEDDED_DIR: &str = "data/reference";

const EMBEDDED: [(&str, &str); 4] = [
    ("chpl.csv", include_str!("../../data/reference/chpl.csv")),
    (
        "activity_codes.csv",
        include_str!("../../data/reference/activity_codes.csv"),
    ),
    (
        "families.toml",
        include_str!("../../data/reference/families.toml"),
    ),
    (
        "manufacturers.toml",
        include_str!("../../data/reference/manufacturers.toml"),
    ),
];

/// Relations allowed between a legacy brand and its current owner.
const RELATIONS: &[&str] = &["acquired", "renamed", "spun off", "merged"];

/// A position in a data file.
#[derive(Debug, Clone)]
struct Loc {
    path: PathBuf,
    line: usize,
    column: Option<usize>,
}

impl Loc {
    fn invalid(&self, message: impl Into<String>) -> RefDataError {
        RefDataError::Invalid {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// A string value and where it was written.
#[derive(Debug, Clone)]
struct S {
    v: String,
    loc: Loc,
}

/// One file being read.
struct File<'a> {
    path: PathBuf,
    text: &'a str,
    /// Byte offset of the start of every line after the first: every
    /// entry's location is looked up here instead of counting newlines
    /// from the top each time (that was a quarter of building the tables).
    line_starts: Vec<usize>,
}

impl<'a> File<'a> {
    fn new(path: PathBuf, text: &'a str) -> File<'a> {
        let line_starts = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        File {
            path,
            text,
            line_starts,
        }
    }

    fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        // Lines starting at or before `offset`, i.e. the 0-based line index.
        let idx = self.line_starts.partition_point(|&s| s <= offset);
        let start = idx
            .checked_sub(1)
            .and_then(|i| self.line_starts.get(i))
            .copied()
            .unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        let line = idx + 1;
        Loc {
            path: self.path.clone(),
            line,
            column: Some(col),
        }
    }

    fn line(&self, line: usize) -> Loc {
        Loc {
            path: self.path.clone(),
            line,
            column: None,
        }
    }

    fn s(&self, v: &Spanned<String>) -> S {
        S {
            v: v.get_ref().trim().to_string(),
            loc: self.loc(v.span().start),
        }
    }

    fn ss(&self, v: &[Spanned<String>]) -> Vec<S> {
        v.iter().map(|x| self.s(x)).collect()
    }

    fn toml_error(&self, e: &toml::de::Error) -> RefDataError {
        let loc = e.span().map(|sp| self.loc(sp.start));
        RefDataError::Syntax {
            path: self.path.clone(),
            line: loc.as_ref().map_or(1, |l| l.line),
            column: Some(loc.and_then(|l| l.column).unwrap_or(1)),
            message: e.message().trim().to_string(),
        }
    }
}

// ----------------------------------------------------------------------------------- CSV

/// One data row of a CSV file.
struct CsvRow {
    line: usize,
    fields: HashMap<&'static str, String>,
}

/// Splits one CSV line: commas, double-quoted fields with `""` escapes.
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else {
            match c {
                ',' => {
                    fields.push(if was_quoted {
                        std::mem::take(&mut cur)
                    } else {
                        std::mem::take(&mut cur).trim().to_string()
                    });
                    was_quoted = false;
                }
                '"' if cur.trim().is_empty() => {
                    cur.clear();
                    in_quotes = true;
                    was_quoted = true;
                }
                '"' => return Err("a quote inside an unquoted field (quote the whole field and double the inner quotes)".into()),
                _ if was_quoted && c.is_whitespace() => {}
                _ if was_quoted => {
                    return Err("text after a closing quote (double the quotes inside a quoted field)".into());
                }
                _ => cur.push(c),
            }
        }
    }
    if in_quotes {
        return Err("unclosed quote (a field cannot span lines)".into());
    }
    fields.push(if was_quoted {
        cur
    } else {
        cur.trim().to_string()
    });
    Ok(fields)
}

/// Reads a CSV file with `#` comment lines and a header naming (at least) `columns`.
fn parse_csv(
    file: &File<'_>,
    columns: &[&'static str],
    required: &[&'static str],
    errs: &mut Vec<RefDataError>,
) -> Vec<CsvRow> {
    let mut rows = Vec::new();
    let mut header: Option<Vec<Option<&'static str>>> = None;
    for (i, raw) in file.text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = match split_csv_line(line) {
            Ok(f) => f,
            Err(m) => {
                errs.push(RefDataError::Syntax {
                    path: file.path.clone(),
                    line: line_no,
                    column: None,
                    message: m,
                });
                continue;
            }
        };
        match &header {
            None => {
                let names: Vec<Option<&'static str>> = fields
                    .iter()
                    .map(|f| {
                        columns
                            .iter()
                            .copied()
                            .find(|c| c.eq_ignore_ascii_case(f.trim()))
                    })
                    .collect();
                for (f, n) in fields.iter().zip(&names) {
                    if n.is_none() {
                        errs.push(RefDataError::Syntax {
                            path: file.path.clone(),
                            line: line_no,
                            column: None,
                            message: format!(
                                "unknown column '{f}' in the header (columns: {})",
                                columns.join(",")
                            ),
                        });
                    }
                }
                for r in required {
                    if !names.contains(&Some(*r)) {
                        errs.push(RefDataError::Syntax {
                            path: file.path.clone(),
                            line: line_no,
                            column: None,
                            message: format!(
                                "the header lacks column '{r}' (expected: {})",
                                columns.join(",")
                            ),
                        });
                    }
                }
                header = Some(names);
            }
            Some(names) => {
                if fields.len() != names.len() {
                    errs.push(RefDataError::Syntax {
                        path: file.path.clone(),
                        line: line_no,
                        column: None,
                        message: format!(
                            "expected {} fields like the header, found {} (quote fields that contain commas)",
                            names.len(),
                            fields.len()
                        ),
                    });
                    continue;
                }
                let mut map = HashMap::new();
                for (n, f) in names.iter().zip(fields) {
                    if let Some(n) = n {
                        map.insert(*n, f);
                    }
                }
                rows.push(CsvRow {
                    line: line_no,
                    fields: map,
                });
            }
        }
    }
    if header.is_none() {
        errs.push(RefDataError::Syntax {
            path: file.path.clone(),
            line: 1,
            column: None,
            message: format!("no header line (expected: {})", columns.join(",")),
        });
    }
    rows
}

fn field<'r>(row: &'r CsvRow, name: &str) -> &'r str {
    row.fields.get(name).map(String::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------------- TOML

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManufacturersFile {
    #[serde(default)]
    brand_placeholders: Vec<Spanned<String>>,
    #[serde(default)]
    manufacturer: Vec<RawManufacturer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManufacturer {
    canonical: Spanned<String>,
    #[serde(default)]
    country: Option<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    #[serde(default)]
    brand_only: Vec<Spanned<String>>,
    #[serde(default)]
    legacy: Vec<RawLegacy>,
    #[serde(default)]
    pattern: Vec<RawPattern>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    extend: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLegacy {
    name: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    #[serde(default)]
    brand_only: Vec<Spanned<String>>,
    #[serde(default)]
    relation: Option<Spanned<String>>,
    #[serde(default)]
    year: Option<u16>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    pattern: Spanned<String>,
    family: Spanned<String>,
    #[serde(default)]
    hs6: Option<Spanned<String>>,
    #[serde(default)]
    brand: Option<Spanned<String>>,
    #[serde(default)]
    shared: bool,
    #[serde(default)]
    text: Option<bool>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamiliesFile {
    #[serde(default)]
    scrap: Option<RawScrap>,
    #[serde(default)]
    family: Vec<RawFamily>,
    #[serde(default)]
    pattern: Vec<RawPattern>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrap {
    #[serde(default)]
    markers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    id: Spanned<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    hs6: Option<Spanned<String>>,
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    extend: bool,
}

// ------------------------------------------------------------------ merged source model

struct PatternSrc {
    pattern: S,
    family: S,
    hs6: Option<S>,
    brand: Option<S>,
    shared: bool,
    text: bool,
    priority: i32,
    note: Option<String>,
}

struct LegacySrc {
    name: S,
    aliases: Vec<S>,
    brand_only: Vec<S>,
    relation: Option<S>,
    year: Option<u16>,
    note: Option<String>,
}

struct ManufacturerSrc {
    canonical: S,
    country: Option<S>,
    aliases: Vec<S>,
    brand_only: Vec<S>,
    legacy: Vec<LegacySrc>,
    patterns: Vec<PatternSrc>,
    note: Option<String>,
}

struct FamilySrc {
    id: S,
    label: Option<String>,
    hs6: Option<S>,
    keywords: Vec<S>,
    exclude: Vec<S>,
    priority: i32,
}

/// Everything read so far, merged (later files override earlier ones).
#[derive(Default)]
struct Merged {
    chpl: BTreeMap<String, (ChplEntry, Loc)>,
    activities: Vec<(ActivityCode, Loc)>,
    activity_pos: HashMap<(String, String), usize>,
    placeholders: Vec<S>,
    manufacturers: Vec<ManufacturerSrc>,
    manufacturer_pos: HashMap<String, usize>,
    families: Vec<FamilySrc>,
    family_pos: HashMap<String, usize>,
    generic_patterns: Vec<PatternSrc>,
    scrap_markers: Vec<S>,
}

fn hs6_of(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ')
    {
        return None;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 6).then_some(digits)
}

fn pattern_src(file: &File<'_>, p: &RawPattern) -> PatternSrc {
    PatternSrc {
        pattern: file.s(&p.pattern),
        family: file.s(&p.family),
        hs6: p.hs6.as_ref().map(|x| file.s(x)),
        brand: p.brand.as_ref().map(|x| file.s(x)),
        shared: p.shared,
        text: p.text.unwrap_or(true),
        priority: p.priority.unwrap_or(0),
        note: p.note.clone(),
    }
}

impl Merged {
    fn add_file(&mut self, name: &str, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        match name {
            "chpl.csv" => self.add_chpl(file, errs),
            "activity_codes.csv" => self.add_activities(file, errs),
            "families.toml" => self.add_families(file, errs),
            "manufacturers.toml" => self.add_manufacturers(file, errs),
            _ => {}
        }
    }

    fn add_chpl(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let cols = ["hs6", "tier", "description"];
        let rows = parse_csv(file, &cols, &cols, errs);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for row in rows {
            let loc = file.line(row.line);
            let raw_hs = field(&row, "hs6");
            let Some(hs6) = hs6_of(raw_hs) else {
                errs.push(loc.invalid(format!(
                    "hs6 '{raw_hs}' is not a 6-digit HS code (write e.g. 854231 or 8542.31)"
                )));
                continue;
            };
            let tier: Tier = match field(&row, "tier").parse() {
                Ok(t) => t,
                Err(e) => {
                    errs.push(loc.invalid(e.to_string()));
                    continue;
                }
            };
            let description = field(&row, "description").to_string();
            if description.is_empty() {
                errs.push(loc.invalid(format!("hs6 {hs6} has an empty description")));
                continue;
            }
            if let Some(first) = seen.insert(hs6.clone(), row.line) {
                errs.push(loc.invalid(format!(
                    "hs6 {hs6} is listed twice in this file (first on line {first}); keep one row"
                )));
                continue;
            }
            self.chpl.insert(
                hs6.clone(),
                (
                    ChplEntry {
                        hs6,
                        tier,
                        description,
                    },
                    loc,
                ),
            );
        }
    }

    fn add_activities(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let cols = [
            "scheme", "code", "sector", "label_en", "label_fr", "keywords", "note",
        ];
        let rows = parse_csv(file, &cols, &["scheme", "code", "sector", "label_en"], errs);
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for row in rows {
            let loc = file.line(row.line);
            let raw_scheme = field(&row, "scheme");
            let Some(scheme) = canonical_scheme(raw_scheme) else {
                errs.push(loc.invalid(format!(
                    "unknown scheme '{raw_scheme}' (expected NACE, NACE21, SIC, ISIC, NMA or NACE11)"
                )));
                continue;
            };
            let (code, digits) = match code_key(scheme, field(&row, "code")) {
                Ok(x) => x,
                Err(m) => {
                    errs.push(loc.invalid(m));
                    continue;
                }
            };
            let sector: Sector = match field(&row, "sector").parse() {
                Ok(s) => s,
                Err(e) => {
                    errs.push(loc.invalid(e.to_string()));
                    continue;
                }
            };
            let label_en = field(&row, "label_en").to_string();
            if label_en.is_empty() {
                errs.push(loc.invalid(format!("{scheme}:{code} has an empty label_en")));
                continue;
            }
            let key = (scheme.to_string(), digits);
            if let Some(first) = seen.insert(key.clone(), row.line) {
                errs.push(loc.invalid(format!(
                    "{scheme}:{code} is listed twice in this file (first on line {first}); keep one row"
                )));
                continue;
            }
            let keywords: Vec<String> = field(&row, "keywords")
                .split(';')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
            let entry = ActivityCode {
                scheme: scheme.to_string(),
                code,
                sector,
                label_en,
                label_fr: field(&row, "label_fr").to_string(),
                keywords,
                note: field(&row, "note").to_string(),
            };
            match self.activity_pos.get(&key) {
                Some(&i) => self.activities[i] = (entry, loc),
                None => {
                    self.activity_pos.insert(key, self.activities.len());
                    self.activities.push((entry, loc));
                }
            }
        }
    }

    fn add_families(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let parsed: FamiliesFile = match toml::from_str(file.text) {
            Ok(p) => p,
            Err(e) => {
                errs.push(file.toml_error(&e));
                return;
            }
        };
        if let Some(scrap) = &parsed.scrap {
            self.scrap_markers.extend(file.ss(&scrap.markers));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for f in &parsed.family {
            let id = file.s(&f.id);
            if let Some(first) = seen.insert(id.v.clone(), id.loc.line) {
                errs.push(id.loc.invalid(format!(
                    "family '{}' is defined twice in this file (first on line {first})",
                    id.v
                )));
                continue;
            }
            let src = FamilySrc {
                label: f.label.clone(),
                hs6: f.hs6.as_ref().map(|x| file.s(x)),
                keywords: file.ss(&f.keywords),
                exclude: file.ss(&f.exclude),
                priority: f.priority.unwrap_or(0),
                id,
            };
            match self.family_pos.get(&src.id.v) {
                Some(&i) if f.extend => {
                    let base = &mut self.families[i];
                    base.keywords.extend(src.keywords);
                    base.exclude.extend(src.exclude);
                    if src.label.is_some() {
                        base.label = src.label;
                    }
                    if src.hs6.is_some() {
                        base.hs6 = src.hs6;
                    }
                    if let Some(p) = f.priority {
                        base.priority = p;
                    }
                }
                Some(&i) => self.families[i] = src,
                None if f.extend => errs.push(src.id.loc.invalid(format!(
                    "extend = true but there is no family '{}' to extend (drop extend to add a new family)",
                    src.id.v
                ))),
                None => {
                    self.family_pos
                        .insert(src.id.v.clone(), self.families.len());
                    self.families.push(src);
                }
            }
        }
        for p in &parsed.pattern {
            self.generic_patterns.push(pattern_src(file, p));
        }
    }

    fn add_manufacturers(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let parsed: ManufacturersFile = match toml::from_str(file.text) {
            Ok(p) => p,
            Err(e) => {
                errs.push(file.toml_error(&e));
                return;
            }
        };
        self.placeholders
            .extend(file.ss(&parsed.brand_placeholders));
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in &parsed.manufacturer {
            let canonical = file.s(&m.canonical);
            let key = brand_key(&canonical.v);
            if key.is_empty() {
                errs.push(canonical.loc.invalid("canonical name is empty"));
                continue;
            }
            if let Some(first) = seen.insert(key.clone(), canonical.loc.line) {
                errs.push(canonical.loc.invalid(format!(
                    "manufacturer '{}' is defined twice in this file (first on line {first})",
                    canonical.v
                )));
                continue;
            }
            let src = ManufacturerSrc {
                country: m.country.as_ref().map(|x| file.s(x)),
                aliases: file.ss(&m.aliases),
                brand_only: file.ss(&m.brand_only),
                legacy: m
                    .legacy
                    .iter()
                    .map(|l| LegacySrc {
                        name: file.s(&l.name),
                        aliases: file.ss(&l.aliases),
                        brand_only: file.ss(&l.brand_only),
                        relation: l.relation.as_ref().map(|x| file.s(x)),
                        year: l.year,
                        note: l.note.clone(),
                    })
                    .collect(),
                patterns: m.pattern.iter().map(|p| pattern_src(file, p)).collect(),
                note: m.note.clone(),
                canonical,
            };
            match self.manufacturer_pos.get(&key) {
                Some(&i) if m.extend => {
                    let base = &mut self.manufacturers[i];
                    base.aliases.extend(src.aliases);
                    base.brand_only.extend(src.brand_only);
                    base.legacy.extend(src.legacy);
                    base.patterns.extend(src.patterns);
                    if src.country.is_some() {
                        base.country = src.country;
                    }
                    if src.note.is_some() {
                        base.note = src.note;
                    }
                }
                Some(&i) => self.manufacturers[i] = src,
                None if m.extend => errs.push(src.canonical.loc.invalid(format!(
                    "extend = true but there is no manufacturer '{}' to extend (drop extend to add a new one)",
                    src.canonical.v
                ))),
                None => {
                    self.manufacturer_pos.insert(key, self.manufacturers.len());
                    self.manufacturers.push(src);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------ loading

/// Reads the shipped files and the optional override directory, then compiles.
pub(crate) fn load(extra_dir: Option<&Path>) -> Result<Reference, RefDataError> {
    let mut errs = Vec::new();
    let mut merged = Merged::default();
    for (name, text) in EMBEDDED {
        let file = File::new(Path::new(EMBEDDED_DIR).join(name), text);
        merged.add_file(name, &file, &mut errs);
    }
    if let Some(dir) = extra_dir {
        if let Err(source) = std::fs::metadata(dir).and_then(|m| {
            if m.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "not a directory",
                ))
            }
        }) {
            return Err(RefDataError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
        for name in FILE_NAMES {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let file = File::new(path, &text);
                    merged.add_file(name, &file, &mut errs);
                }
                Err(source) => errs.push(RefDataError::Read { path, source }),
            }
        }
    }
    if !errs.is_empty() {
        return Err(RefDataError::from_list(errs));
    }
    let reference = compile(merged, &mut errs);
    match reference {
        Some(r) if errs.is_empty() => Ok(r),
        _ => Err(RefDataError::from_list(errs)),
    }
}

/// Anchors a pattern at the start and compiles it for normalised (ASCII) part numbers.
fn compile_pattern(p: &str) -> Result<(String, regex::bytes::Regex), String> {
    let body = p.trim().trim_start_matches('^');
    if body.is_empty() {
        return Err("empty pattern".into());
    }
    let anchored = format!("^(?:{body})");
    let re = regex::bytes::RegexBuilder::new(&anchored)
        .unicode(false)
        .case_insensitive(true)
        .build()
        .map_err(|e| {
            let msg = e.to_string();
            let last = msg.lines().last().unwrap_or("").trim().to_string();
            format!("invalid regex '{p}': {last}")
        })?;
    if re.is_match(b"") {
        return Err(format!(
            "pattern '{p}' matches an empty part number; start it with at least one letter or digit"
        ));
    }
    Ok((anchored, re))
}

/// Builder state for manufacturer names.
#[derive(Default)]
struct Names {
    keys: HashMap<String, (Owner, String)>,
    words: Vec<(Vec<String>, Owner, String)>,
    brand: PhraseMatcherBuilder,
    text: PhraseMatcherBuilder,
}

impl Names {
    /// Registers one name of an owner. `brand_only` names are never searched in free text.
    fn add(
        &mut self,
        name: &S,
        owner: Owner,
        brand_only: bool,
        owners: &[String],
        errs: &mut Vec<RefDataError>,
    ) {
        let key = brand_key(&name.v);
        if key.is_empty() {
            errs.push(
                name.loc
                    .invalid(format!("name '{}' has no letters or digits", name.v)),
            );
            return;
        }
        match self.keys.get(&key) {
            Some((other, _)) if other.mfr != owner.mfr => {
                errs.push(name.loc.invalid(format!(
                    "name '{}' is already used by {}; a name must point to one manufacturer (remove it here or there)",
                    name.v,
                    owners
                        .get(other.mfr)
                        .map(String::as_str)
                        .unwrap_or("another manufacturer")
                )));
                return;
            }
            Some(_) => {}
            None => {
                self.keys.insert(key.clone(), (owner, name.v.clone()));
                self.words
                    .push((brand_words(&name.v), owner, name.v.clone()));
            }
        }
        self.brand.add(&name.v, owner);
        if !brand_only && key.chars().count() >= 3 {
            self.text.add(&name.v, owner);
        }
    }
}

fn is_brand_only(name: &S, list: &[S]) -> bool {
    let k = brand_key(&name.v);
    list.iter().any(|b| brand_key(&b.v) == k)
}

fn check_hs6(h: &S, errs: &mut Vec<RefDataError>) -> Option<String> {
    let x = hs6_of(&h.v);
    if x.is_none() {
        errs.push(h.loc.invalid(format!(
            "hs6 '{}' is not a 6-digit HS code (write e.g. \"854231\")",
            h.v
        )));
    }
    x
}

/// Compiled families and their keyword sets (still to be built).
#[derive(Default)]
struct Families {
    list: Vec<Family>,
    index: HashMap<String, usize>,
    keywords: KeywordSetBuilder,
    excludes: KeywordSetBuilder,
}

fn compile_families(srcs: &[FamilySrc], errs: &mut Vec<RefDataError>) -> Families {
    let mut out = Families::default();
    for f in srcs {
        let id = &f.id.v;
        let snake = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if id.is_empty() || !id.chars().all(snake) {
            errs.push(f.id.loc.invalid(format!(
                "family id '{id}' must be snake_case ASCII (a-z, 0-9, _)"
            )));
            continue;
        }
        let hs6 = match &f.hs6 {
            Some(h) => match check_hs6(h, errs) {
                Some(x) => x,
                None => continue,
            },
            None => {
                errs.push(f.id.loc.invalid(format!(
                    "family '{id}' needs an hs6 code (six digits, e.g. \"854231\")"
                )));
                continue;
            }
        };
        let idx = out.list.len();
        for k in &f.keywords {
            if let Err(msg) = out.keywords.add(&k.v, idx) {
                errs.push(k.loc.invalid(msg));
            }
        }
        for k in &f.exclude {
            if let Err(msg) = out.excludes.add(&k.v, idx) {
                errs.push(k.loc.invalid(msg));
            }
        }
        out.index.insert(id.clone(), idx);
        out.list.push(Family {
            id: id.clone(),
            label: f.label.clone().unwrap_or_else(|| id.clone()),
            hs6,
            keywords: f.keywords.iter().map(|k| k.v.clone()).collect(),
            exclude: f.exclude.iter().map(|k| k.v.clone()).collect(),
            priority: f.priority,
        });
    }
    out
}

/// Compiled part-number patterns, in the order of the regex set.
#[derive(Default)]
struct Patterns {
    compiled: Vec<CompiledPattern>,
    anchored: Vec<String>,
}

impl Patterns {
    /// Compiles one pattern; false (with the error recorded) when it is invalid.
    fn add(
        &mut self,
        p: &PatternSrc,
        owner: Option<Owner>,
        fams: &Families,
        errs: &mut Vec<RefDataError>,
    ) -> bool {
        let Some(&family) = fams.index.get(&p.family.v) else {
            let mut ids: Vec<&str> = fams.list.iter().map(|f| f.id.as_str()).collect();
            ids.sort_unstable();
            errs.push(p.family.loc.invalid(format!(
                "unknown family '{}' (families.toml defines: {})",
                p.family.v,
                ids.join(", ")
            )));
            return false;
        };
        let hs6 = match &p.hs6 {
            Some(h) => match check_hs6(h, errs) {
                Some(x) => x,
                None => return false,
            },
            None => fams.list[family].hs6.clone(),
        };
        match compile_pattern(&p.pattern.v) {
            Ok((anchored, regex)) => {
                self.anchored.push(anchored);
                self.compiled.push(CompiledPattern {
                    regex,
                    owner,
                    family,
                    hs6,
                    shared: p.shared,
                    text: p.text,
                    priority: p.priority,
                });
                true
            }
            Err(msg) => {
                errs.push(p.pattern.loc.invalid(msg));
                false
            }
        }
    }
}

/// Manufacturers, their names and their patterns.
struct Makers {
    list: Vec<Manufacturer>,
    by_canonical: HashMap<String, usize>,
    names: Names,
}

fn compile_manufacturers(
    srcs: &[ManufacturerSrc],
    fams: &Families,
    patterns: &mut Patterns,
    errs: &mut Vec<RefDataError>,
) -> Makers {
    let owners: Vec<String> = srcs.iter().map(|x| x.canonical.v.clone()).collect();
    let mut out = Makers {
        list: Vec::new(),
        by_canonical: HashMap::new(),
        names: Names::default(),
    };
    for (mi, src) in srcs.iter().enumerate() {
        let canonical = &src.canonical;
        let country = match &src.country {
            Some(c) if c.v.len() == 2 && c.v.chars().all(|x| x.is_ascii_uppercase()) => c.v.clone(),
            Some(c) => {
                errs.push(c.loc.invalid(format!(
                    "country '{}' must be a two-letter ISO 3166 code in capitals, like \"US\"",
                    c.v
                )));
                String::new()
            }
            None => {
                errs.push(canonical.loc.invalid(format!(
                    "manufacturer '{}' needs a country (ISO 3166 alpha-2, like \"US\")",
                    canonical.v
                )));
                String::new()
            }
        };
        let main = Owner {
            mfr: mi,
            legacy: None,
        };
        for a in std::iter::once(canonical)
            .chain(&src.aliases)
            .chain(&src.brand_only)
        {
            let only = is_brand_only(a, &src.brand_only);
            out.names.add(a, main, only, &owners, errs);
        }
        let mut legacy = Vec::new();
        for (li, l) in src.legacy.iter().enumerate() {
            let owner = Owner {
                mfr: mi,
                legacy: Some(li),
            };
            for a in std::iter::once(&l.name)
                .chain(&l.aliases)
                .chain(&l.brand_only)
            {
                let only = is_brand_only(a, &l.brand_only);
                out.names.add(a, owner, only, &owners, errs);
            }
            let relation = match &l.relation {
                Some(r) if RELATIONS.contains(&r.v.as_str()) => r.v.clone(),
                Some(r) => {
                    errs.push(r.loc.invalid(format!(
                        "relation '{}' is not one of: {}",
                        r.v,
                        RELATIONS.join(", ")
                    )));
                    String::new()
                }
                None => "acquired".to_string(),
            };
            legacy.push(LegacyBrand {
                name: l.name.v.clone(),
                aliases: l.aliases.iter().map(|x| x.v.clone()).collect(),
                brand_only: l.brand_only.iter().map(|x| x.v.clone()).collect(),
                relation,
                year: l.year,
                note: l.note.clone(),
            });
        }
        let mut part_patterns = Vec::new();
        for p in &src.patterns {
            let legacy_idx = match &p.brand {
                None => None,
                Some(b) => {
                    let k = brand_key(&b.v);
                    match legacy.iter().position(|l| brand_key(&l.name) == k) {
                        Some(i) => Some(i),
                        None if k == brand_key(&canonical.v) => None,
                        None => {
                            errs.push(b.loc.invalid(format!(
                                "brand '{}' is not a legacy brand of {} (add it under [[manufacturer.legacy]] or remove brand)",
                                b.v, canonical.v
                            )));
                            continue;
                        }
                    }
                }
            };
            let owner = Owner {
                mfr: mi,
                legacy: legacy_idx,
            };
            if patterns.add(p, Some(owner), fams, errs) {
                part_patterns.push(PartPattern {
                    pattern: p.pattern.v.clone(),
                    family: p.family.v.clone(),
                    hs6: p.hs6.as_ref().map(|x| x.v.clone()),
                    brand: p.brand.as_ref().map(|x| x.v.clone()),
                    shared: p.shared,
                    text: p.text,
                    priority: p.priority,
                    note: p.note.clone(),
                });
            }
        }
        out.by_canonical.insert(canonical.v.clone(), mi);
        out.list.push(Manufacturer {
            canonical: canonical.v.clone(),
            country,
            aliases: src.aliases.iter().map(|x| x.v.clone()).collect(),
            brand_only: src.brand_only.iter().map(|x| x.v.clone()).collect(),
            legacy,
            patterns: part_patterns,
            note: src.note.clone(),
        });
    }
    out
}

/// The activity table, with its keyword set still to be built.
fn compile_activities(
    srcs: Vec<(ActivityCode, Loc)>,
    errs: &mut Vec<RefDataError>,
) -> (ActivityTable, KeywordSetBuilder) {
    let mut t = ActivityTable {
        rows: Vec::new(),
        by_code: HashMap::new(),
        by_label: HashMap::new(),
        labels: Vec::new(),
        keywords: Default::default(),
    };
    let mut kw = KeywordSetBuilder::default();
    for (i, (row, loc)) in srcs.into_iter().enumerate() {
        let digits: String = row.code.chars().filter(char::is_ascii_digit).collect();
        t.by_code
            .entry((row.scheme.clone(), digits))
            .or_default()
            .push(i);
        for l in [&row.label_en, &row.label_fr] {
            let f = fold(l, false);
            if f.is_empty() {
                continue;
            }
            let e = t.by_label.entry(f.clone()).or_default();
            if !e.contains(&i) {
                e.push(i);
            }
            t.labels.push((format!(" {f} "), i));
        }
        for k in &row.keywords {
            if let Err(msg) = kw.add(k, i) {
                errs.push(loc.invalid(msg));
            }
        }
        t.rows.push(row);
    }
    (t, kw)
}

/// Validates and compiles everything merged; every error goes to `errs`.
fn compile(m: Merged, errs: &mut Vec<RefDataError>) -> Option<Reference> {
    let chpl: BTreeMap<String, ChplEntry> = m.chpl.into_iter().map(|(k, (e, _))| (k, e)).collect();

    let fams = compile_families(&m.families, errs);
    let mut scrap = KeywordSetBuilder::default();
    for s in &m.scrap_markers {
        if let Err(msg) = scrap.add(&s.v, 0) {
            errs.push(s.loc.invalid(msg));
        }
    }
    let mut patterns = Patterns::default();
    let makers = compile_manufacturers(&m.manufacturers, &fams, &mut patterns, errs);
    for p in &m.generic_patterns {
        patterns.add(p, None, &fams, errs);
    }
    let placeholders: HashSet<String> = m
        .placeholders
        .iter()
        .map(|p| brand_key(&p.v))
        .filter(|k| !k.is_empty())
        .collect();
    let (mut activities, activity_keywords) = compile_activities(m.activities, errs);

    // Regex sets. Patterns were checked one by one above, so failures here are limits.
    fn done<T>(what: &str, r: Result<T, regex::Error>, errs: &mut Vec<RefDataError>) -> Option<T> {
        r.map_err(|e| {
            errs.push(RefDataError::Invalid {
                path: Path::new(EMBEDDED_DIR).to_path_buf(),
                line: 1,
                column: None,
                message: format!("cannot compile the {what}: {e}"),
            })
        })
        .ok()
    }
    let family_keywords = done("family keywords", fams.keywords.build(), errs);
    let family_excludes = done("family exclusions", fams.excludes.build(), errs);
    let scrap_markers = done("scrap markers", scrap.build(), errs);
    let activity_keywords = done("activity keywords", activity_keywords.build(), errs);
    let brand_phrases = done("brand names", makers.names.brand.build(), errs);
    let text_phrases = done("brand names", makers.names.text.build(), errs);
    let pattern_set = done(
        "part-number patterns",
        regex::bytes::RegexSetBuilder::new(&patterns.anchored)
            .unicode(false)
            .case_insensitive(true)
            .size_limit(128 << 20)
            .dfa_size_limit(64 << 20)
            .build(),
        errs,
    );
    let (
        Some(family_keywords),
        Some(family_excludes),
        Some(scrap_markers),
        Some(activity_keywords),
        Some(brand_phrases),
        Some(text_phrases),
        Some(pattern_set),
    ) = (
        family_keywords,
        family_excludes,
        scrap_markers,
        activity_keywords,
        brand_phrases,
        text_phrases,
        pattern_set,
    )
    else {
        return None;
    };
    activities.keywords = activity_keywords;

    let mut brand_words_list = makers.names.words;
    brand_words_list.sort_by(|a, b| a.2.cmp(&b.2));
    Some(Reference {
        chpl,
        activities,
        manufacturers: makers.list,
        by_canonical: makers.by_canonical,
        brand_keys: makers.names.keys,
        brand_words: brand_words_list,
        brand_phrases,
        text_phrases,
        placeholders,
        patterns: patterns.compiled,
        pattern_set,
        families: fams.list,
        family_index: fams.index,
        family_keywords,
        family_excludes,
        scrap_markers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line(r#"a, "b, c" ,"say ""hi""""#).unwrap_or_default(),
            vec!["a", "b, c", "say \"hi\""]
        );
        assert!(split_csv_line(r#"a,"open"#).is_err());
    }

    /// The definition the indexed lookup must agree with: count from the top.
    fn line_col(text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn indexed_locations_agree_with_counting() {
        let text = "a = 1\nname = \"Métaux\"\n\n[x]\ny = \"é\"\nlast";
        let file = File::new(PathBuf::from("t.toml"), text);
        for offset in 0..=text.len() + 2 {
            if !text.is_char_boundary(offset.min(text.len())) {
                continue;
            }
            let loc = file.loc(offset);
            assert_eq!(
                (loc.line, loc.column),
                {
                    let (l, c) = line_col(text, offset);
                    (l, Some(c))
                },
                "offset {offset}"
            );
        }
    }
}
