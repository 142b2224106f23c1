//! Compiled phrase matchers over folded text: keyword sets (with `*` stems) and alias
//! phrase lookups. Built once at load; matching allocates only its small result.
//!
//! Both work on a haystack in which every word has its own surrounding spaces
//! ([`super::normalize::haystack`]). Neither is a regex: building regexes of all the
//! phrases was half of the reference tables' build time, which a recheck pays when any
//! page changed (BENCHMARKS.md, issue 16). A keyword set is an Aho-Corasick automaton
//! over its phrases' first words; alias phrases are looked up word by word.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, BuildError, MatchKind};

use super::Owner;
use super::normalize::{is_stopword, match_words};

/// One keyword phrase of a [`KeywordSet`].
#[derive(Debug, Clone)]
pub(crate) struct KeywordEntry {
    /// What the phrase stands for (a family index, an activity row…).
    pub(crate) tag: usize,
    /// Number of words: longer phrases are more specific.
    pub(crate) words: usize,
    /// The phrase as written in the data file.
    pub(crate) phrase: String,
}

/// One word of a keyword phrase, as the literal it matches in a haystack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    /// A whole word: `" word "`.
    Word(String),
    /// A stem written `stem*`: `" stem"`, then the rest of that word and its space.
    Stem(String),
}

impl Part {
    fn literal(&self) -> &str {
        match self {
            Part::Word(s) | Part::Stem(s) => s,
        }
    }

    /// Where this part ends when it matches `hay` at `at`.
    fn match_at(&self, hay: &str, at: usize) -> Option<usize> {
        let rest = hay.get(at..)?;
        let lit = self.literal();
        if !rest.starts_with(lit) {
            return None;
        }
        let end = at + lit.len();
        match self {
            Part::Word(_) => Some(end),
            Part::Stem(_) => stem_end(hay, end),
        }
    }
}

/// The end of a stem's word that goes on at `at`: past the next space, if there is one.
fn stem_end(hay: &str, at: usize) -> Option<usize> {
    let rest = hay.as_bytes().get(at..)?;
    rest.iter().position(|&b| b == b' ').map(|i| at + i + 1)
}

/// A set of keyword phrases matched in one pass over a stopword-free haystack.
///
/// A phrase matches where its words follow each other in the haystack, each word equal
/// to the phrase's word or, for a stem, starting with it. One automaton finds every
/// phrase's first word; the rest of the phrase is then compared in place.
#[derive(Debug, Default)]
pub(crate) struct KeywordSet {
    /// Every distinct first part, as a literal (none when the set is empty).
    first: Option<AhoCorasick>,
    /// For each first-part literal, the entries that start with it.
    by_first: Vec<Vec<usize>>,
    /// Each entry's parts.
    parts: Vec<Vec<Part>>,
    entries: Vec<KeywordEntry>,
}

impl KeywordSet {
    /// Every entry whose phrase occurs in `hay` (see [`super::normalize::haystack`]), in
    /// the order the entries were added, each once.
    pub(crate) fn hits<'a>(&'a self, hay: &str) -> impl Iterator<Item = &'a KeywordEntry> + 'a {
        let mut found = Vec::new();
        // Which entries are in `found` (sized on the first hit): a page that names
        // every phrase and then repeats words must not cost a scan of `found` per word.
        let mut done: Vec<bool> = Vec::new();
        if let Some(first) = &self.first {
            for m in first.find_overlapping_iter(hay) {
                for &e in self
                    .by_first
                    .get(m.pattern().as_usize())
                    .into_iter()
                    .flatten()
                {
                    if done.get(e) == Some(&true) || !self.matches_at(e, hay, m.start()) {
                        continue;
                    }
                    if done.is_empty() {
                        done.resize(self.entries.len(), false);
                    }
                    if let Some(d) = done.get_mut(e) {
                        *d = true;
                    }
                    found.push(e);
                }
            }
        }
        found.sort_unstable();
        found.into_iter().filter_map(move |i| self.entries.get(i))
    }

    /// Whether entry `e`'s parts match `hay` one after another from `at`.
    fn matches_at(&self, e: usize, hay: &str, at: usize) -> bool {
        let Some(parts) = self.parts.get(e) else {
            return false;
        };
        let mut pos = at;
        for p in parts {
            match p.match_at(hay, pos) {
                Some(end) => pos = end,
                None => return false,
            }
        }
        true
    }
}

/// Collects phrases, then compiles a [`KeywordSet`].
#[derive(Debug, Default)]
pub(crate) struct KeywordSetBuilder {
    parts: Vec<Vec<Part>>,
    entries: Vec<KeywordEntry>,
    /// The first entry with each list of parts.
    seen: HashMap<Vec<Part>, usize>,
}

impl KeywordSetBuilder {
    /// Adds a phrase. Errors (as a message) when the phrase has no word left after folding
    /// and dropping small words, or has a `*` inside a word.
    pub(crate) fn add(&mut self, phrase: &str, tag: usize) -> Result<(), String> {
        let folded = match_words(phrase, true);
        let mut parts = Vec::new();
        for w in folded.split(' ').filter(|w| !w.is_empty()) {
            let stem = w.trim_end_matches('*');
            if stem.contains('*') {
                return Err(format!(
                    "keyword '{phrase}': '*' is allowed only at the end of a word"
                ));
            }
            if stem.is_empty() || (stem.len() == w.len() && is_stopword(stem)) {
                continue;
            }
            if stem.len() < w.len() {
                parts.push(Part::Stem(format!(" {stem}")));
            } else {
                parts.push(Part::Word(format!(" {stem} ")));
            }
        }
        if parts.is_empty() {
            return Err(format!(
                "keyword '{phrase}' has no word to match (only punctuation or small words like 'de', 'of')"
            ));
        }
        if let Some(&i) = self.seen.get(&parts)
            && self.entries.get(i).is_some_and(|e| e.tag == tag)
        {
            return Ok(());
        }
        self.seen.entry(parts.clone()).or_insert(self.entries.len());
        self.entries.push(KeywordEntry {
            tag,
            words: parts.len(),
            phrase: phrase.to_string(),
        });
        self.parts.push(parts);
        Ok(())
    }

    /// Compiles the set.
    pub(crate) fn build(self) -> Result<KeywordSet, BuildError> {
        let mut literals: Vec<&str> = Vec::new();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut by_first: Vec<Vec<usize>> = Vec::new();
        for (e, parts) in self.parts.iter().enumerate() {
            let Some(lit) = parts.first().map(Part::literal) else {
                continue;
            };
            let id = *ids.entry(lit).or_insert_with(|| {
                literals.push(lit);
                by_first.push(Vec::new());
                literals.len() - 1
            });
            if let Some(list) = by_first.get_mut(id) {
                list.push(e);
            }
        }
        let first = if literals.is_empty() {
            None
        } else {
            Some(automaton(&literals)?)
        };
        Ok(KeywordSet {
            first,
            by_first,
            parts: self.parts,
            entries: self.entries,
        })
    }
}

/// An automaton over `literals`, of the kind that is quick to build: the tables are built
/// on every start, and matching runs over short folded texts.
fn automaton(literals: &[&str]) -> Result<AhoCorasick, BuildError> {
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(literals)
}

/// Looks up alias phrases (whole words, in order of appearance) in a folded haystack.
///
/// A hash lookup of each word of the haystack, then a comparison of the words that
/// follow: nothing to compile, since every start builds this from every maker alias.
#[derive(Debug, Default)]
pub(crate) struct PhraseMatcher {
    /// The phrases that start with each word, most words first.
    by_first: HashMap<String, Vec<usize>>,
    phrases: Vec<Phrase>,
}

/// One alias phrase of a [`PhraseMatcher`].
#[derive(Debug)]
struct Phrase {
    /// Its folded words.
    words: Vec<String>,
    owner: Owner,
    /// The alias as written in the data.
    alias: String,
}

impl Phrase {
    /// Whether this phrase's words begin `rest`.
    fn begins(&self, rest: &[&str]) -> bool {
        self.words.len() <= rest.len() && self.words.iter().zip(rest).all(|(a, b)| a == b)
    }
}

impl PhraseMatcher {
    /// Every alias found in `hay` (a [`super::normalize::haystack`]), left to right, with
    /// the alias as written in the data. Where several start at the same word the one
    /// with the most words wins, and matches do not overlap.
    pub(crate) fn find_all<'a>(&'a self, hay: &str) -> Vec<(Owner, &'a str)> {
        let mut out = Vec::new();
        if self.phrases.is_empty() {
            return out;
        }
        let words: Vec<&str> = hay.split(' ').filter(|w| !w.is_empty()).collect();
        let mut rest = words.as_slice();
        while let Some((first, after)) = rest.split_first() {
            let hit = self
                .by_first
                .get(*first)
                .into_iter()
                .flatten()
                .filter_map(|&p| self.phrases.get(p))
                .find(|p| p.begins(rest));
            rest = match hit {
                Some(p) => {
                    out.push((p.owner, p.alias.as_str()));
                    rest.get(p.words.len()..).unwrap_or_default()
                }
                None => after,
            };
        }
        out
    }
}

/// Collects alias phrases, then compiles a [`PhraseMatcher`].
#[derive(Debug, Default)]
pub(crate) struct PhraseMatcherBuilder {
    map: HashMap<String, (Owner, String)>,
}

impl PhraseMatcherBuilder {
    /// Adds an alias; the first owner of a phrase keeps it.
    pub(crate) fn add(&mut self, alias: &str, owner: Owner) {
        let key = match_words(alias, false);
        if key.is_empty() {
            return;
        }
        self.map.entry(key).or_insert((owner, alias.to_string()));
    }

    /// Indexes the phrases ("texas instruments inc" beats "texas instruments" at the
    /// same word).
    pub(crate) fn build(self) -> PhraseMatcher {
        let mut m = PhraseMatcher::default();
        for (key, (owner, alias)) in self.map {
            let words: Vec<String> = key.split(' ').map(str::to_string).collect();
            let Some(first) = words.first() else {
                continue;
            };
            m.by_first
                .entry(first.clone())
                .or_default()
                .push(m.phrases.len());
            m.phrases.push(Phrase {
                words,
                owner,
                alias,
            });
        }
        let phrases = &m.phrases;
        for list in m.by_first.values_mut() {
            list.sort_by_key(|&p| std::cmp::Reverse(phrases.get(p).map_or(0, |p| p.words.len())));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    //! The matchers must find exactly what the regexes they replaced found: each set of
    //! the embedded reference data is compared, on generated haystacks, with a regex
    //! built the old way from the same phrases.

    use super::*;
    use crate::classify::Reference;
    use crate::classify::normalize::haystack;

    /// A small deterministic generator (xorshift64*), enough to pick words.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// The old regex for one keyword phrase.
    fn old_keyword_pattern(parts: &[Part]) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Word(s) => regex::escape(s),
                Part::Stem(s) => format!("{}[^ ]* ", regex::escape(s)),
            })
            .collect()
    }

    /// Haystacks made of the set's own words (stems with and without endings), words
    /// that share a prefix with them, and filler, in random order and length.
    fn haystacks(words: &[String], rng: &mut Rng, n: usize) -> Vec<String> {
        const FILLER: &[&str] = &["x", "de", "steel", "scrap", "42", "métal", "лом", "a"];
        const ENDINGS: &[&str] = &["", "s", "ing", "es", "1", "é"];
        (0..n)
            .map(|_| {
                let len = 1 + rng.below(10);
                let picked: Vec<String> = (0..len)
                    .map(|_| match rng.below(4) {
                        0 => FILLER[rng.below(FILLER.len())].to_string(),
                        1 => {
                            let w = &words[rng.below(words.len())];
                            format!("{w}{}", ENDINGS[rng.below(ENDINGS.len())])
                        }
                        _ => words[rng.below(words.len())].clone(),
                    })
                    .collect();
                haystack(picked.iter().map(String::as_str))
            })
            .collect()
    }

    fn words_of(literals: impl Iterator<Item = String>) -> Vec<String> {
        let mut words: Vec<String> = literals
            .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .collect();
        words.sort();
        words.dedup();
        words
    }

    fn assert_keyword_set_is_its_regex(name: &str, set: &KeywordSet, rng: &mut Rng) {
        assert!(!set.entries.is_empty(), "{name}: no phrases");
        let old = regex::RegexSetBuilder::new(set.parts.iter().map(|p| old_keyword_pattern(p)))
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()
            .expect("the old keyword regexes compile");
        let words = words_of(set.parts.iter().flatten().map(|p| p.literal().to_string()));
        let mut hays = haystacks(&words, rng, 500);
        // Every phrase in its own words, alone and between other phrases' words.
        for (i, parts) in set.parts.iter().enumerate() {
            let own: Vec<String> = parts
                .iter()
                .map(|p| p.literal().trim().to_string())
                .collect();
            hays.push(haystack(own.iter().map(String::as_str)));
            let other = &words[i % words.len()];
            hays.push(haystack(
                std::iter::once(other.as_str())
                    .chain(own.iter().map(String::as_str))
                    .chain(std::iter::once("tail")),
            ));
        }
        let mut found = 0;
        for hay in &hays {
            let want: Vec<usize> = old.matches(hay).into_iter().collect();
            let got: Vec<usize> = set
                .hits(hay)
                .map(|e| {
                    set.entries
                        .iter()
                        .position(|x| std::ptr::eq(x, e))
                        .expect("a hit is one of the entries")
                })
                .collect();
            assert_eq!(got, want, "{name}: haystack {hay:?}");
            found += want.len();
        }
        assert!(
            found > hays.len() / 2,
            "{name}: too few matches ({found}) to compare"
        );
    }

    fn assert_phrases_are_their_regex(name: &str, m: &PhraseMatcher, rng: &mut Rng) {
        assert!(!m.phrases.is_empty(), "{name}: no phrases");
        // The old matcher: one alternation, longest phrase first, looked up by its words.
        let mut keys: Vec<String> = m
            .phrases
            .iter()
            .map(|p| match_words(&p.alias, false))
            .collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let alts: Vec<String> = keys
            .iter()
            .map(|k| {
                k.split(' ')
                    .map(|w| format!(" {} ", regex::escape(w)))
                    .collect()
            })
            .collect();
        let old = regex::RegexBuilder::new(&format!("(?:{})", alts.join("|")))
            .size_limit(64 << 20)
            .build()
            .expect("the old alias regex compiles");
        let by_key: HashMap<String, &str> = m
            .phrases
            .iter()
            .map(|p| (match_words(&p.alias, false), p.alias.as_str()))
            .collect();
        let words = words_of(keys.iter().cloned());
        let hays = haystacks(&words, rng, 500);
        let mut found = 0;
        for hay in &hays {
            let want: Vec<&str> = old
                .find_iter(hay)
                .filter_map(|x| {
                    let key = x.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
                    by_key.get(&key).copied()
                })
                .collect();
            let got: Vec<&str> = m.find_all(hay).into_iter().map(|(_, a)| a).collect();
            assert_eq!(got, want, "{name}: haystack {hay:?}");
            found += want.len();
        }
        assert!(
            found > hays.len() / 2,
            "{name}: too few matches ({found}) to compare"
        );
    }

    #[test]
    fn the_matchers_find_what_the_old_regexes_found() {
        let r = Reference::embedded().expect("embedded reference data");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (name, set) in [
            ("family keywords", &r.family_keywords),
            ("family exclusions", &r.family_excludes),
            ("scrap markers", &r.scrap_markers),
            ("activity keywords", &r.activities.keywords),
        ] {
            assert_keyword_set_is_its_regex(name, set, &mut rng);
        }
        for (name, m) in [
            ("brand names", &r.brand_phrases),
            ("brand names in text", &r.text_phrases),
        ] {
            assert_phrases_are_their_regex(name, m, &mut rng);
        }
    }

    #[test]
    fn a_stem_needs_the_rest_of_its_word_and_phrases_need_their_order() {
        let mut b = KeywordSetBuilder::default();
        b.add("micro* controller", 1).expect("valid");
        b.add("dsp", 2).expect("valid");
        b.add("dsp", 2).expect("a repeat is accepted");
        let set = b.build().expect("builds");
        assert_eq!(set.entries.len(), 2, "the repeated phrase is kept once");
        let tags = |hay: &str| set.hits(hay).map(|e| e.tag).collect::<Vec<_>>();
        assert_eq!(tags(" microchip  controller  dsp "), vec![1, 2]);
        assert_eq!(tags(" micro  controller "), vec![1]);
        assert_eq!(tags(" controller  microchip "), Vec::<usize>::new());
        assert_eq!(
            tags(" microchip"),
            Vec::<usize>::new(),
            "the stem's word is not closed"
        );
        assert_eq!(tags(" dsps "), Vec::<usize>::new(), "a whole word is whole");
        assert_eq!(tags(" dsp  dsp  dsp "), vec![2], "each entry once");
    }
}
