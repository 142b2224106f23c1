//! Catalogue item → manufacturer, product family, HS code, CHPL tier, confidence, reasons.
//!
//! Order of evidence: the brand column, else a manufacturer named in the item text, else
//! the part-number patterns. A brand (or a name in the text) always wins over a part-number
//! prefix that another vendor also uses; the pattern then still tells the product family.
//! The family comes from the part-number pattern, else from product keywords in the text.

use super::keywords::KeywordEntry;
use super::normalize::{
    Candidate, brand_key, brand_words, column_candidates, haystack, is_stopword, match_words,
    text_candidates,
};
use super::{ItemClass, MatchVia, Owner, Reference, dotted_hs};

/// A part-number pattern that matched a candidate.
#[derive(Debug, Clone, Copy)]
struct Hit {
    pattern: usize,
    candidate: usize,
    column: bool,
    len: usize,
}

impl Hit {
    /// Higher is better: from the part-number column, not a shared prefix, data priority,
    /// longer match.
    fn rank(&self, r: &Reference) -> (bool, bool, i32, usize) {
        let p = &r.patterns[self.pattern];
        (self.column, !p.shared, p.priority, self.len)
    }
}

/// Confidence of a family read from a part-number pattern when the brand
/// column names a maker that is not a listed manufacturer: below the rules'
/// default threshold (0.5) unless the item's text names the same family.
const BRAND_BLOCKED_FAMILY_CONF: f32 = 0.35;

/// Words that make a named maker or part the thing an item replaces (EN, FR, RU, DE);
/// a trailing `*` matches any ending.
const REPLACEMENT_WORDS: &[&str] = &[
    "аналог",
    "аналога",
    "аналоги",
    "аналогом",
    "замена",
    "заменитель",
    "совместим*",
    "клон*",
    "equivalent",
    "replacement",
    "replaces",
    "compatible",
    "clone",
    "substitute",
    "remplace*",
    "ersatz",
    "kompatibel",
    "entspricht",
];

/// Confidence of a product family read from a pattern that names no maker (or a prefix
/// many makers share): the part number alone says what the goods are, whoever made them.
/// A number in free text is slightly weaker than one in the part-number column, but still
/// above the rules' default threshold (0.5): a listing whose names carry "LM317T" lists
/// regulators.
fn generic_conf(column: bool, shared: bool) -> f32 {
    match (column, shared) {
        (true, false) => 0.75,
        (true, true) => 0.7,
        (false, false) => 0.65,
        (false, true) => 0.6,
    }
}

fn best<'a>(r: &Reference, hits: impl Iterator<Item = &'a Hit>) -> Option<Hit> {
    hits.copied().max_by(|a, b| {
        a.rank(r)
            .cmp(&b.rank(r))
            // Earlier patterns win ties: reverse the index order.
            .then(b.pattern.cmp(&a.pattern))
    })
}

/// How a brand column resolved.
enum Brand<'a> {
    /// A listed manufacturer.
    Found {
        owner: Owner,
        how: BrandHow,
        alias: &'a str,
    },
    /// "N/A", "OEM", "-": no brand.
    Placeholder,
    /// A brand that is not in the list.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrandHow {
    Exact,
    Abbreviation,
    Inside,
}

/// The manufacturer a brand column names (exact, abbreviated or inside a longer brand).
pub(crate) fn brand_owner(r: &Reference, brand: &str) -> Option<usize> {
    match resolve_brand(r, brand) {
        Brand::Found { owner, .. } => Some(owner.mfr),
        Brand::Placeholder | Brand::Unknown => None,
    }
}

fn resolve_brand<'a>(r: &'a Reference, brand: &str) -> Brand<'a> {
    let key = brand_key(brand);
    if key.is_empty() || r.placeholders.contains(&key) {
        return Brand::Placeholder;
    }
    if let Some((owner, alias)) = r.brand_keys.get(&key) {
        return Brand::Found {
            owner: *owner,
            how: BrandHow::Exact,
            alias,
        };
    }
    // Abbreviation: each word a prefix of the corresponding word of one manufacturer's name
    // ("Texas Instr." → "Texas Instruments", "Infin. Tech." → "Infineon Technologies").
    let words = brand_words(brand);
    let letters: usize = words.iter().map(|w| w.chars().count()).sum();
    if letters >= 4 && words.iter().all(|w| w.chars().count() >= 2) {
        let mut found: Option<(Owner, &'a str)> = None;
        let mut ambiguous = false;
        for (name_words, owner, alias) in &r.brand_words {
            if name_words.len() < words.len() {
                continue;
            }
            if words
                .iter()
                .zip(name_words)
                .all(|(w, n)| n.starts_with(w.as_str()))
            {
                match found {
                    None => found = Some((*owner, alias)),
                    Some((o, _)) if o.mfr != owner.mfr => ambiguous = true,
                    Some((o, a)) if o.legacy != owner.legacy => {
                        found = Some((
                            Owner {
                                mfr: o.mfr,
                                legacy: None,
                            },
                            a,
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        if let (Some((owner, alias)), false) = (found, ambiguous) {
            return Brand::Found {
                owner,
                how: BrandHow::Abbreviation,
                alias,
            };
        }
    }
    // A known name inside a longer brand ("Xilinx Inc. (AMD)", "Altera (Intel)").
    let folded = match_words(brand, false);
    let hay = haystack(folded.split(' ').filter(|w| !w.is_empty()));
    if let Some((owner, alias)) = r.brand_phrases.find_all(&hay).into_iter().next() {
        return Brand::Found {
            owner,
            how: BrandHow::Inside,
            alias,
        };
    }
    Brand::Unknown
}

/// "AMD", or "AMD (Xilinx, acquired 2022)" for a legacy brand; with `short`, the legacy
/// part reads "(acquired 2022)" when the brand as written is the legacy name itself.
fn owner_phrase(r: &Reference, owner: Owner, written: Option<&str>) -> String {
    let m = &r.manufacturers[owner.mfr];
    let Some(l) = owner.legacy.and_then(|i| m.legacy.get(i)) else {
        return m.canonical.clone();
    };
    let change = match l.year {
        Some(y) => format!("{} {y}", l.relation),
        None => l.relation.clone(),
    };
    if written.is_some_and(|w| brand_key(w) == brand_key(&l.name)) {
        format!("{} ({change})", m.canonical)
    } else {
        format!("{} ({}, {change})", m.canonical, l.name)
    }
}

fn family_label(r: &Reference, family: usize) -> &str {
    r.families
        .get(family)
        .map(|f| f.label.as_str())
        .unwrap_or("unknown family")
}

/// The best product family named by keywords in the text, if any.
fn keyword_family<'a>(r: &'a Reference, kw_hay: &str) -> Option<&'a KeywordEntry> {
    let excluded: Vec<usize> = r.family_excludes.hits(kw_hay).map(|e| e.tag).collect();
    r.family_keywords
        .hits(kw_hay)
        .filter(|e| !excluded.contains(&e.tag))
        .max_by(|a, b| {
            let pa = r.families.get(a.tag).map(|f| f.priority).unwrap_or(0);
            let pb = r.families.get(b.tag).map(|f| f.priority).unwrap_or(0);
            (a.words, pa).cmp(&(b.words, pb)).then(b.tag.cmp(&a.tag))
        })
}

pub(crate) fn classify(
    r: &Reference,
    name: Option<&str>,
    brand: Option<&str>,
    part_number: Option<&str>,
    extra_text: &[&str],
) -> ItemClass {
    let mut out = ItemClass::default();
    let mut reasons: Vec<String> = Vec::new();

    // The item's own text, folded once.
    let mut text = String::new();
    for t in name.into_iter().chain(extra_text.iter().copied()) {
        if !t.trim().is_empty() {
            text.push_str(t);
            text.push('\n');
        }
    }
    let folded = match_words(&text, false);
    let words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    let all_hay = haystack(words.iter().copied());
    let kw_hay = haystack(words.iter().copied().filter(|w| !is_stopword(w)));

    let scrap = r.scrap_markers.hits(&kw_hay).next();
    if let Some(m) = scrap {
        reasons.push(format!(
            "the text marks the item as scrap or waste ('{}'): names, part numbers and product words in the text are ignored",
            m.phrase
        ));
    }
    let scrap = scrap.is_some();
    // "аналог STM32F103C8T6", "replacement for LM317", "compatible with …": names in the
    // text are what the item replaces, not who made it.
    let replacement = REPLACEMENT_WORDS.iter().find(|w| {
        all_hay.contains(&format!(" {w} "))
            || (w.ends_with('*') && all_hay.contains(&format!(" {}", w.trim_end_matches('*'))))
    });
    if let Some(w) = replacement {
        reasons.push(format!(
            "the text says '{}': makers and maker prefixes named in the text are what the item replaces, not who made it",
            w.trim_end_matches('*')
        ));
    }
    let replacement = replacement.is_some();

    // Brand column.
    let brand = brand.map(str::trim).filter(|b| !b.is_empty());
    let brand_res = brand.map(|b| (b, resolve_brand(r, b)));
    let mut brand_blocks = false;
    let mut chosen: Option<(Owner, MatchVia, f32)> = None;
    match &brand_res {
        Some((b, Brand::Found { owner, how, alias })) => {
            let what = owner_phrase(r, *owner, Some(b));
            reasons.push(match how {
                BrandHow::Exact => format!("brand '{b}' → {what}"),
                BrandHow::Abbreviation => {
                    format!("brand '{b}' read as an abbreviation of '{alias}' → {what}")
                }
                BrandHow::Inside => format!("brand '{b}' names '{alias}' → {what}"),
            });
            let conf = if *how == BrandHow::Exact { 0.95 } else { 0.85 };
            chosen = Some((*owner, MatchVia::Brand, conf));
        }
        Some((b, Brand::Placeholder)) => {
            reasons.push(format!(
                "brand '{b}' is a placeholder, not a maker: ignored"
            ));
        }
        Some((b, Brand::Unknown)) => {
            brand_blocks = true;
            reasons.push(format!(
                "brand '{b}' is not a listed manufacturer: other makers' names and part-number prefixes do not override it"
            ));
        }
        None => {}
    }

    // Part-number candidates and the patterns they match.
    let mut cands: Vec<Candidate> = Vec::new();
    if let Some(p) = part_number.map(str::trim).filter(|p| !p.is_empty()) {
        column_candidates(p, &mut cands);
    }
    if !scrap {
        text_candidates(&text, &mut cands);
    }
    // Product keywords in the text. A carrier (a development board, a kit) names the chips
    // on it: part numbers in its text are components, not the product.
    let keyword = if scrap {
        None
    } else {
        keyword_family(r, &kw_hay)
    };
    let carrier = keyword.filter(|k| r.families.get(k.tag).is_some_and(|f| f.carrier));
    if let Some(k) = carrier {
        if cands.iter().any(|c| !c.column) {
            reasons.push(format!(
                "the text says '{}': part numbers in the text name parts on it, not the product, so they give neither its maker nor its family",
                k.phrase
            ));
        }
        cands.retain(|c| c.column);
    }
    let mut hits: Vec<Hit> = Vec::new();
    for (ci, c) in cands.iter().enumerate() {
        for pi in r.pattern_set.matches(c.text.as_bytes()).iter() {
            let p = &r.patterns[pi];
            if !c.column && !p.text {
                continue;
            }
            let len = p.match_len(c.text.as_bytes());
            hits.push(Hit {
                pattern: pi,
                candidate: ci,
                column: c.column,
                len,
            });
        }
    }

    // A manufacturer named in the text. It wins over a part-number prefix that other makers
    // share, but not over a maker's own specific pattern: page text naming "Texas
    // Instruments" does not make an STM32 a TI part.
    if chosen.is_none() && !brand_blocks && !scrap && !replacement {
        let found = r.text_phrases.find_all(&all_hay);
        let owns = |o: Owner, h: &Hit| {
            r.patterns[h.pattern]
                .owner
                .is_some_and(|po| po.mfr == o.mfr)
        };
        let agreeing = found
            .iter()
            .find(|(o, _)| hits.iter().any(|h| owns(*o, h)))
            .copied();
        let specific_other = best(
            r,
            hits.iter()
                .filter(|h| r.patterns[h.pattern].owner.is_some()),
        )
        .filter(|h| !r.patterns[h.pattern].shared);
        match (found.first(), agreeing, specific_other) {
            (Some(&(_, alias)), None, Some(h)) => {
                reasons.push(format!(
                    "the text names '{alias}', but part number '{}' has a pattern of its own maker: the part number decides",
                    cands[h.candidate].text
                ));
            }
            (Some(&first), _, _) => {
                let pick = agreeing.unwrap_or(first);
                reasons.push(format!(
                    "the text names '{}' → {}",
                    pick.1,
                    owner_phrase(r, pick.0, Some(pick.1))
                ));
                let mut others: Vec<&str> = found
                    .iter()
                    .filter(|(o, _)| o.mfr != pick.0.mfr)
                    .map(|(o, _)| r.manufacturers[o.mfr].canonical.as_str())
                    .collect();
                others.sort_unstable();
                others.dedup();
                if !others.is_empty() {
                    reasons.push(format!("the text also names: {}", others.join(", ")));
                }
                chosen = Some((pick.0, MatchVia::Text, 0.8));
            }
            (None, _, _) => {}
        }
    }

    // The part-number pattern that decides the family (and, failing all else, the maker).
    let mut family_hit: Option<(Hit, f32)> = None;
    match chosen {
        Some((owner, via, conf)) => {
            let generic_best = best(
                r,
                hits.iter()
                    .filter(|h| r.patterns[h.pattern].owner.is_none()),
            );
            if let Some(h) = best(
                r,
                hits.iter().filter(|h| {
                    r.patterns[h.pattern]
                        .owner
                        .is_some_and(|o| o.mfr == owner.mfr)
                }),
            )
            .filter(|h| {
                // The maker's own prefix decides unless it is a shared one that an
                // industry-standard number outranks (TI's 'LM' against LM317).
                !r.patterns[h.pattern].shared || generic_best.is_none_or(|g| g.rank(r) <= h.rank(r))
            }) {
                let p = &r.patterns[h.pattern];
                let line_owner = p.owner.unwrap_or(owner);
                reasons.push(format!(
                    "part number '{}' matches the {} pattern for {}",
                    cands[h.candidate].text,
                    owner_phrase(r, line_owner, None),
                    family_label(r, p.family)
                ));
                if via == MatchVia::Brand || via == MatchVia::Text {
                    chosen = Some((owner, via, (conf + 0.05).min(1.0)));
                }
                family_hit = Some((h, 0.95));
            } else if let Some(h) = best(
                r,
                hits.iter()
                    .filter(|h| r.patterns[h.pattern].owner.is_none()),
            ) {
                let p = &r.patterns[h.pattern];
                reasons.push(format!(
                    "part number '{}' matches the generic pattern for {} (many makers)",
                    cands[h.candidate].text,
                    family_label(r, p.family)
                ));
                if let Some(o) = hits
                    .iter()
                    .filter_map(|x| r.patterns[x.pattern].owner)
                    .find(|o| o.mfr != owner.mfr)
                {
                    reasons.push(format!(
                        "it also fits a part-number pattern of {}; the {via} wins over the colliding prefix",
                        owner_phrase(r, o, None),
                    ));
                }
                // A brand plus an industry-standard number is as sure of the family as a
                // maker's own pattern.
                family_hit = Some((h, if via == MatchVia::Brand { 0.85 } else { 0.75 }));
            } else if let Some(h) = best(r, hits.iter()) {
                let p = &r.patterns[h.pattern];
                if let Some(o) = p.owner {
                    reasons.push(format!(
                        "part number '{}' also fits a part-number pattern of {}; the {via} wins over the colliding prefix, the pattern gives only the product family",
                        cands[h.candidate].text,
                        owner_phrase(r, o, None),
                    ));
                }
                family_hit = Some((h, 0.7));
            }
        }
        None => {
            let owned: Vec<Hit> = hits
                .iter()
                .filter(|h| r.patterns[h.pattern].owner.is_some())
                .copied()
                .collect();
            if brand_blocks {
                let generic = best(
                    r,
                    hits.iter().filter(|h| {
                        r.patterns[h.pattern].owner.is_none() || r.patterns[h.pattern].shared
                    }),
                );
                if let Some(h) = generic {
                    // An industry-standard number (2N3904, LM317) is the same goods
                    // whoever made it: an unknown brand does not hide its family.
                    let p = &r.patterns[h.pattern];
                    reasons.push(format!(
                        "part number '{}' is an industry-standard number for {}: the product family holds whoever made it",
                        cands[h.candidate].text,
                        family_label(r, p.family)
                    ));
                    family_hit = Some((h, generic_conf(h.column, p.shared)));
                } else if let Some(h) = best(r, hits.iter()) {
                    let p = &r.patterns[h.pattern];
                    reasons.push(format!(
                        "part number '{}' matches a pattern for {}; used for the product family only, and only with low confidence unless the text agrees",
                        cands[h.candidate].text,
                        family_label(r, p.family)
                    ));
                    // A brand that is not a chip maker (a baler maker's
                    // "MAX-3200") is stronger evidence than a maker's own prefix.
                    family_hit = Some((h, BRAND_BLOCKED_FAMILY_CONF));
                }
            } else if let Some(top) = best(r, owned.iter()).filter(|t| {
                // A generic industry-standard number (LM317, 2N3904) outranks a maker's
                // shared prefix that also covers it.
                best(r, hits.iter())
                    .is_none_or(|b| r.patterns[b.pattern].owner.is_some() || b.rank(r) <= t.rank(r))
            }) {
                let top_rank = top.rank(r);
                let top_owner = r.patterns[top.pattern].owner;
                let mut rivals: Vec<&str> = owned
                    .iter()
                    .filter(|h| h.rank(r) == top_rank)
                    .filter_map(|h| r.patterns[h.pattern].owner)
                    .filter(|o| top_owner.is_some_and(|t| t.mfr != o.mfr))
                    .map(|o| r.manufacturers[o.mfr].canonical.as_str())
                    .collect();
                rivals.sort_unstable();
                rivals.dedup();
                let p = &r.patterns[top.pattern];
                let cand = &cands[top.candidate].text;
                match (top_owner, rivals.is_empty()) {
                    (Some(owner), true) if !p.shared && (top.column || !replacement) => {
                        let conf = if top.column { 0.85 } else { 0.75 };
                        reasons.push(format!(
                            "part number '{cand}' matches the {} pattern for {}",
                            owner_phrase(r, owner, None),
                            family_label(r, p.family)
                        ));
                        chosen = Some((owner, MatchVia::PartNumber, conf));
                        family_hit = Some((top, conf));
                    }
                    (Some(owner), true) => {
                        reasons.push(format!(
                            "part number '{cand}' fits the {} pattern for {}, but the prefix of '{cand}' is also used by other vendors: no maker from the part number alone (a brand would name it)",
                            owner_phrase(r, owner, None),
                            family_label(r, p.family)
                        ));
                        family_hit = Some((top, generic_conf(top.column, true)));
                    }
                    (Some(owner), false) => {
                        reasons.push(format!(
                            "part number '{cand}' matches patterns of {} and {} equally: manufacturer left open",
                            r.manufacturers[owner.mfr].canonical,
                            rivals.join(", ")
                        ));
                        family_hit = Some((top, generic_conf(top.column, true)));
                    }
                    (None, _) => {}
                }
            } else if let Some(h) = best(r, hits.iter()) {
                let p = &r.patterns[h.pattern];
                reasons.push(format!(
                    "part number '{}' matches the generic pattern for {} (an industry-standard number, also used by other vendors: no maker from the part number alone)",
                    cands[h.candidate].text,
                    family_label(r, p.family)
                ));
                family_hit = Some((h, generic_conf(h.column, p.shared)));
            }
        }
    }

    let (family, hs6, family_conf) = match (family_hit, keyword) {
        (Some((h, conf)), kw) => {
            let p = &r.patterns[h.pattern];
            let mut conf = conf;
            if let Some(k) = kw.filter(|k| k.tag == p.family) {
                reasons.push(format!("the text agrees ('{}')", k.phrase));
                conf = if conf == BRAND_BLOCKED_FAMILY_CONF {
                    0.6
                } else {
                    (conf + 0.05).min(1.0)
                };
            }
            out.part_number = Some(cands[h.candidate].text.clone());
            (Some(p.family), Some(p.hs6.clone()), conf)
        }
        (None, Some(k)) => {
            let f = &r.families[k.tag];
            reasons.push(format!("the text says '{}' → {}", k.phrase, f.label));
            let conf = (0.6 + 0.05 * (k.words.saturating_sub(1) as f32)).min(0.75);
            (Some(k.tag), Some(f.hs6.clone()), conf)
        }
        (None, None) => (None, None, 0.0),
    };

    if let Some((owner, via, _)) = chosen {
        let m = &r.manufacturers[owner.mfr];
        out.manufacturer = Some(m.canonical.clone());
        out.manufacturer_country = Some(m.country.clone());
        out.manufacturer_via = Some(via);
        out.manufacturer_coalition = Some(m.coalition);
        out.legacy_brand = owner
            .legacy
            .and_then(|i| m.legacy.get(i))
            .map(|l| l.name.clone());
    }
    if let (Some(fi), Some(hs6)) = (family, hs6) {
        let f = &r.families[fi];
        out.family = Some(f.id.clone());
        out.family_label = Some(f.label.clone());
        let dotted = dotted_hs(&hs6);
        match r.chpl(&hs6) {
            Some(e) => {
                reasons.push(format!("{} → HS {dotted}, CHPL {}", f.label, e.tier));
                out.chpl_tier = Some(e.tier);
            }
            None => reasons.push(format!("{} → HS {dotted}, not on the CHPL", f.label)),
        }
        out.hs_code = Some(dotted);
    }

    let maker_conf = chosen.map(|(_, _, c)| c);
    out.maker_confidence = round2(maker_conf.unwrap_or(0.0));
    out.family_confidence = round2(if family.is_some() { family_conf } else { 0.0 });
    out.confidence = match (maker_conf, family.is_some()) {
        (Some(m), true) => (m + family_conf) / 2.0,
        (Some(m), false) => m * 0.6,
        (None, true) => family_conf * 0.9,
        (None, false) => 0.0,
    };
    out.confidence = (out.confidence * 100.0).round() / 100.0;
    if out.manufacturer.is_none() && out.family.is_none() {
        reasons.push("no listed brand, part-number pattern or product keyword".to_string());
    }
    out.reasons = reasons;
    out
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}
