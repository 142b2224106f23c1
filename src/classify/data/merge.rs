//! Merging: the shipped files first, then the settings directory's files of the same names.
//!
//! Each file's rows and tables become source entries (`*Src`) that keep where every value
//! was written. A later file adds entries, replaces an entry of the same key (CHPL code,
//! scheme and code, family id, manufacturer's brand key), or, with `extend = true`, adds
//! aliases, patterns and keywords to it.
//!
//! **Invariants:** entries keep the order in which they were first defined (replacing one
//! keeps its place); a key defined twice in one file is an error at the second definition,
//! naming the line of the first; nothing here compiles a regex or a keyword set (that is
//! [`super::compile`]'s job, run only once every file parsed).

use std::collections::{BTreeMap, HashMap};

use super::csv::read_csv;
use super::raw::{FamiliesFile, ManufacturersFile, RawPattern};
use super::{File, Loc, S, hs6_of};
use crate::classify::activity::{canonical_scheme, code_key};
use crate::classify::normalize::brand_key;
use crate::classify::{ActivityCode, ChplEntry, RefDataError, Sector, Tier};

/// A part-number pattern, of a manufacturer or generic (`families.toml`).
pub(super) struct PatternSrc {
    pub(super) pattern: S,
    pub(super) family: S,
    pub(super) hs6: Option<S>,
    pub(super) brand: Option<S>,
    pub(super) shared: bool,
    pub(super) text: bool,
    pub(super) priority: i32,
    pub(super) note: Option<String>,
}

/// An acquired or renamed brand of a manufacturer.
pub(super) struct LegacySrc {
    pub(super) name: S,
    pub(super) aliases: Vec<S>,
    pub(super) brand_only: Vec<S>,
    pub(super) relation: Option<S>,
    pub(super) year: Option<u16>,
    pub(super) note: Option<String>,
}

/// A manufacturer, with everything `extend = true` files added to it.
pub(super) struct ManufacturerSrc {
    pub(super) canonical: S,
    pub(super) country: Option<S>,
    /// From the export-control coalition; `None`: decided by the country.
    pub(super) coalition: Option<bool>,
    pub(super) aliases: Vec<S>,
    /// Names also looked for in free text although they are in `brand_only`-style files.
    pub(super) text_names: Vec<S>,
    pub(super) brand_only: Vec<S>,
    pub(super) legacy: Vec<LegacySrc>,
    pub(super) patterns: Vec<PatternSrc>,
    pub(super) note: Option<String>,
}

/// A product family.
pub(super) struct FamilySrc {
    pub(super) id: S,
    pub(super) label: Option<String>,
    pub(super) hs6: Option<S>,
    pub(super) keywords: Vec<S>,
    pub(super) exclude: Vec<S>,
    pub(super) priority: i32,
    pub(super) carrier: bool,
}

/// Everything read so far, merged (later files override earlier ones).
#[derive(Default)]
pub(super) struct Merged {
    pub(super) chpl: BTreeMap<String, (ChplEntry, Loc)>,
    pub(super) activities: Vec<(ActivityCode, Loc)>,
    pub(super) activity_pos: HashMap<(String, String), usize>,
    pub(super) placeholders: Vec<S>,
    pub(super) manufacturers: Vec<ManufacturerSrc>,
    pub(super) manufacturer_pos: HashMap<String, usize>,
    pub(super) families: Vec<FamilySrc>,
    pub(super) family_pos: HashMap<String, usize>,
    pub(super) generic_patterns: Vec<PatternSrc>,
    pub(super) scrap_markers: Vec<S>,
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
    /// Merges one file (by its name: the four of [`super::FILE_NAMES`]) over what is there.
    pub(super) fn add_file(&mut self, name: &str, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        match name {
            "chpl.csv" => self.add_chpl(file, errs),
            "activity_codes.csv" => self.add_activities(file, errs),
            "families.toml" => self.add_families(file, errs),
            "manufacturers.toml" => self.add_manufacturers(file, errs),
            "makers.csv" => self.add_makers(file, errs),
            _ => {}
        }
    }

    fn add_chpl(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let cols = ["hs6", "tier", "description"];
        let rows = read_csv(file, &cols, &cols, errs);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for row in rows {
            let loc = file.line(row.line);
            let raw_hs = row.get("hs6");
            let Some(hs6) = hs6_of(raw_hs) else {
                errs.push(loc.invalid(format!(
                    "hs6 '{raw_hs}' is not a 6-digit HS code (write e.g. 854231 or 8542.31)"
                )));
                continue;
            };
            let tier: Tier = match row.get("tier").parse() {
                Ok(t) => t,
                Err(e) => {
                    errs.push(loc.invalid(e.to_string()));
                    continue;
                }
            };
            let description = row.get("description").to_string();
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
        let rows = read_csv(file, &cols, &["scheme", "code", "sector", "label_en"], errs);
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for row in rows {
            let loc = file.line(row.line);
            let raw_scheme = row.get("scheme");
            let Some(scheme) = canonical_scheme(raw_scheme) else {
                errs.push(loc.invalid(format!(
                    "unknown scheme '{raw_scheme}' (expected NACE, NACE21, SIC, ISIC, NMA or NACE11)"
                )));
                continue;
            };
            let (code, digits) = match code_key(scheme, row.get("code")) {
                Ok(x) => x,
                Err(m) => {
                    errs.push(loc.invalid(m));
                    continue;
                }
            };
            let sector: Sector = match row.get("sector").parse() {
                Ok(s) => s,
                Err(e) => {
                    errs.push(loc.invalid(e.to_string()));
                    continue;
                }
            };
            let label_en = row.get("label_en").to_string();
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
            let keywords: Vec<String> = row
                .get("keywords")
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
                label_fr: row.get("label_fr").to_string(),
                keywords,
                note: row.get("note").to_string(),
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
                carrier: f.carrier.unwrap_or(false),
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
                    if let Some(c) = f.carrier {
                        base.carrier = c;
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
                coalition: m.coalition,
                aliases: file.ss(&m.aliases),
                text_names: Vec::new(),
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
                    if src.coalition.is_some() {
                        base.coalition = src.coalition;
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
    /// `makers.csv`: one maker a row. A canonical name already defined (in
    /// `manufacturers.toml` or an earlier file) is extended: its names, legacy brands and
    /// patterns are added, its country and coalition set.
    fn add_makers(&mut self, file: &File<'_>, errs: &mut Vec<RefDataError>) {
        let cols = [
            "canonical",
            "country",
            "coalition",
            "aliases",
            "text_names",
            "legacy",
            "patterns",
            "note",
        ];
        let rows = read_csv(file, &cols, &["canonical", "country", "coalition"], errs);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let list = |v: &str, loc: &Loc| -> Vec<S> {
            v.split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| S {
                    v: x.to_string(),
                    loc: loc.clone(),
                })
                .collect()
        };
        for row in rows {
            let loc = file.line(row.line);
            let canonical = S {
                v: row.get("canonical").to_string(),
                loc: loc.clone(),
            };
            let key = brand_key(&canonical.v);
            if key.is_empty() {
                errs.push(loc.invalid("canonical name is empty"));
                continue;
            }
            if let Some(first) = seen.insert(key.clone(), row.line) {
                errs.push(loc.invalid(format!(
                    "maker '{}' is listed twice in this file (first on line {first}); keep one row",
                    canonical.v
                )));
                continue;
            }
            let coalition = match row.get("coalition").to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                other => {
                    errs.push(loc.invalid(format!("coalition '{other}' must be yes or no")));
                    continue;
                }
            };
            let mut legacy = Vec::new();
            for l in list(row.get("legacy"), &loc) {
                let (name, year) = match l.v.split_once('=') {
                    Some((n, y)) => match y.trim().parse::<u16>() {
                        Ok(y) => (n.trim().to_string(), Some(y)),
                        Err(_) => {
                            errs.push(loc.invalid(format!(
                                "legacy brand '{}': the year after '=' must be a number",
                                l.v
                            )));
                            continue;
                        }
                    },
                    None => (l.v.clone(), None),
                };
                legacy.push(LegacySrc {
                    name: S {
                        v: name,
                        loc: loc.clone(),
                    },
                    aliases: Vec::new(),
                    brand_only: Vec::new(),
                    relation: None,
                    year,
                    note: None,
                });
            }
            let mut patterns = Vec::new();
            for p in list(row.get("patterns"), &loc) {
                let Some((re, fam)) = p.v.split_once("=>") else {
                    errs.push(
                        loc.invalid(format!("pattern '{}' must be written REGEX=>family", p.v)),
                    );
                    continue;
                };
                patterns.push(PatternSrc {
                    pattern: S {
                        v: re.trim().to_string(),
                        loc: loc.clone(),
                    },
                    family: S {
                        v: fam.trim().to_string(),
                        loc: loc.clone(),
                    },
                    hs6: None,
                    brand: None,
                    shared: false,
                    text: true,
                    priority: 0,
                    note: None,
                });
            }
            let aliases = list(row.get("aliases"), &loc);
            let text_names = list(row.get("text_names"), &loc);
            let note = Some(row.get("note").to_string()).filter(|n| !n.is_empty());
            match self.manufacturer_pos.get(&key) {
                Some(&i) => {
                    let base = &mut self.manufacturers[i];
                    base.brand_only.extend(aliases);
                    base.text_names.extend(text_names);
                    base.legacy.extend(legacy);
                    base.patterns.extend(patterns);
                    base.coalition = Some(coalition);
                    base.country = Some(S {
                        v: row.get("country").to_string(),
                        loc: loc.clone(),
                    });
                    if note.is_some() && base.note.is_none() {
                        base.note = note;
                    }
                }
                None => {
                    self.manufacturer_pos.insert(key, self.manufacturers.len());
                    self.manufacturers.push(ManufacturerSrc {
                        country: Some(S {
                            v: row.get("country").to_string(),
                            loc: loc.clone(),
                        }),
                        coalition: Some(coalition),
                        // Names of this file are brand-column names; `text_names` are
                        // the ones distinctive enough for free text.
                        aliases: Vec::new(),
                        brand_only: aliases,
                        text_names,
                        legacy,
                        patterns,
                        note,
                        canonical,
                    });
                }
            }
        }
    }
}
