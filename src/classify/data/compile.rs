//! Compiling: the merged entries validated and built into the tables of a [`Reference`].
//!
//! Families first (patterns name them), then manufacturers with their names and patterns,
//! then the generic patterns, placeholders, scrap markers and activity codes; last, every
//! keyword set, phrase matcher and the one regex set of all part-number patterns.
//!
//! **Invariants:** every semantic error (unknown family, bad regex, a name claimed by two
//! manufacturers, a bad country, relation or HS code) is collected with the location of the
//! offending value, and an entry with an error is left out rather than half-built; a
//! [`Reference`] is returned only when there is no error; pattern `i` of
//! `Reference::patterns` is pattern `i` of its regex set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::merge::{FamilySrc, ManufacturerSrc, Merged, PatternSrc};
use super::{EMBEDDED_DIR, Loc, S, hs6_of};
use crate::classify::keywords::{KeywordSetBuilder, PhraseMatcherBuilder};
use crate::classify::normalize::{brand_key, brand_words, match_words};
use crate::classify::{
    ActivityCode, ActivityTable, ChplEntry, CompiledPattern, Family, LegacyBrand, Manufacturer,
    Owner, PartPattern, RefDataError, Reference,
};

/// Countries of the coalition that restricts exports to Russia (EU, G7, and the others that
/// apply the Common High Priority List): a maker whose entry does not say `coalition` is in
/// it when its head office is in one of these.
const COALITION: &[&str] = &[
    "US", "CA", "GB", "JP", "KR", "TW", "AU", "NZ", "CH", "NO", "IS", "LI", "SG", "AT", "BE", "BG",
    "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
    "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// Relations allowed between a legacy brand and its current owner.
const RELATIONS: &[&str] = &["acquired", "renamed", "spun off", "merged"];

/// Validates and compiles everything merged; every error goes to `errs`.
pub(super) fn compile(m: Merged, errs: &mut Vec<RefDataError>) -> Option<Reference> {
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

    // Automata and regex sets. Patterns were checked one by one above, so failures here
    // are limits.
    fn done<T, E: std::fmt::Display>(
        what: &str,
        r: Result<T, E>,
        errs: &mut Vec<RefDataError>,
    ) -> Option<T> {
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
    let brand_phrases = makers.names.brand.build();
    let text_phrases = makers.names.text.build();
    let pattern_set = done(
        "part-number patterns",
        regex::bytes::RegexSetBuilder::new(patterns.compiled.iter().map(|p| &p.anchored))
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
        Some(pattern_set),
    ) = (
        family_keywords,
        family_excludes,
        scrap_markers,
        activity_keywords,
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

/// Anchors a pattern at the start and checks it for normalised (ASCII) part numbers: its
/// syntax is parsed here (with the position of an error); the engine itself is built on
/// first use ([`CompiledPattern::match_len`]), since the regex set finds which patterns match
/// and only those need their own regex. Building all ~1600 up front was a third of a
/// recheck's CPU and ~6 MB (BENCHMARKS.md, issue 16).
fn compile_pattern(p: &str) -> Result<String, String> {
    let body = p.trim().trim_start_matches('^');
    if body.is_empty() {
        return Err("empty pattern".into());
    }
    let anchored = format!("^(?:{body})");
    // The last line of the parser's or the engine's message says what is wrong.
    let invalid = |e: &dyn std::fmt::Display| {
        let msg = e.to_string();
        let last = msg.lines().last().unwrap_or("").trim().to_string();
        format!("invalid regex '{p}': {last}")
    };
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(true)
        .build()
        .parse(&anchored)
        .map_err(|e| invalid(&e))?;
    // A pattern that may match nothing is asked the engine, which knows what `\b` and its
    // kin make of an empty text.
    if hir.properties().minimum_len() == Some(0) {
        let re = CompiledPattern::build(&anchored).map_err(|e| invalid(&e))?;
        if re.is_match(b"") {
            return Err(format!(
                "pattern '{p}' matches an empty part number; start it with at least one letter or digit"
            ));
        }
    }
    Ok(anchored)
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
            carrier: f.carrier,
        });
    }
    out
}

/// Compiled part-number patterns, in the order of the regex set.
#[derive(Default)]
struct Patterns {
    compiled: Vec<CompiledPattern>,
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
            Ok(anchored) => {
                self.compiled.push(CompiledPattern {
                    anchored,
                    regex: std::sync::OnceLock::new(),
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
            let only = is_brand_only(a, &src.brand_only)
                || (src.coalition.is_some()
                    && std::ptr::eq(a, canonical)
                    && src.aliases.is_empty());
            out.names.add(a, main, only, &owners, errs);
        }
        for a in &src.text_names {
            out.names.add(a, main, false, &owners, errs);
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
        let coalition = src
            .coalition
            .unwrap_or_else(|| COALITION.contains(&country.as_str()));
        out.list.push(Manufacturer {
            canonical: canonical.v.clone(),
            coalition,
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
            let f = match_words(l, false);
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

#[cfg(test)]
mod tests {
    use super::{CompiledPattern, compile_pattern};

    #[test]
    fn patterns_are_checked_at_load_and_built_on_first_use() {
        let e = compile_pattern("TMS320(").unwrap_err();
        assert!(
            e.starts_with("invalid regex 'TMS320(': error: unclosed group"),
            "{e}"
        );
        let e = compile_pattern("[0-9]*").unwrap_err();
        assert!(e.contains("matches an empty part number"), "{e}");
        // May match nothing by its syntax, but not an empty text.
        assert_eq!(compile_pattern(r"\bX?").as_deref(), Ok(r"^(?:\bX?)"));

        let p = CompiledPattern {
            anchored: compile_pattern("TMS320F28[0-9]{3}").expect("valid"),
            regex: std::sync::OnceLock::new(),
            owner: None,
            family: 0,
            hs6: String::new(),
            shared: false,
            text: false,
            priority: 0,
        };
        assert!(p.regex.get().is_none(), "nothing built at load");
        assert_eq!(p.match_len(b"TMS320F28335PGFA"), 12);
        assert_eq!(p.match_len(b"XTMS320F28335"), 0);
    }
}
