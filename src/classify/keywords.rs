//! Compiled phrase matchers over folded text: keyword sets (with `*` stems) and alias
//! phrase lookups. Built once at load; matching allocates only its small result.

use std::collections::HashMap;

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

/// A set of keyword phrases matched in one pass over a stopword-free haystack.
#[derive(Debug)]
pub(crate) struct KeywordSet {
    set: regex::RegexSet,
    entries: Vec<KeywordEntry>,
}

impl Default for KeywordSet {
    fn default() -> Self {
        KeywordSet {
            set: regex::RegexSet::empty(),
            entries: Vec::new(),
        }
    }
}

impl KeywordSet {
    /// Every entry whose phrase occurs in `hay` (see [`super::normalize::haystack`]).
    pub(crate) fn hits<'a>(&'a self, hay: &str) -> impl Iterator<Item = &'a KeywordEntry> + 'a {
        let m = if self.entries.is_empty() {
            None
        } else {
            Some(self.set.matches(hay))
        };
        m.into_iter()
            .flat_map(|m| m.into_iter())
            .filter_map(move |i| self.entries.get(i))
    }
}

/// Collects phrases, then compiles a [`KeywordSet`].
#[derive(Debug, Default)]
pub(crate) struct KeywordSetBuilder {
    patterns: Vec<String>,
    entries: Vec<KeywordEntry>,
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
                parts.push(format!(" {}[^ ]* ", regex::escape(stem)));
            } else {
                parts.push(format!(" {} ", regex::escape(stem)));
            }
        }
        if parts.is_empty() {
            return Err(format!(
                "keyword '{phrase}' has no word to match (only punctuation or small words like 'de', 'of')"
            ));
        }
        let pattern = parts.concat();
        if let Some(i) = self.patterns.iter().position(|p| *p == pattern)
            && self.entries[i].tag == tag
        {
            return Ok(());
        }
        self.patterns.push(pattern);
        self.entries.push(KeywordEntry {
            tag,
            words: parts.len(),
            phrase: phrase.to_string(),
        });
        Ok(())
    }

    /// Compiles the set.
    pub(crate) fn build(self) -> Result<KeywordSet, regex::Error> {
        let set = regex::RegexSetBuilder::new(&self.patterns)
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()?;
        Ok(KeywordSet {
            set,
            entries: self.entries,
        })
    }
}

/// Looks up alias phrases (whole words, in order of appearance) in a folded haystack.
#[derive(Debug, Default)]
pub(crate) struct PhraseMatcher {
    regex: Option<regex::Regex>,
    map: HashMap<String, (Owner, String)>,
}

impl PhraseMatcher {
    /// Every alias found, left to right, with the alias as written in the data.
    pub(crate) fn find_all<'a>(&'a self, hay: &str) -> Vec<(Owner, &'a str)> {
        let Some(re) = &self.regex else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in re.find_iter(hay) {
            let key = m.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some((owner, alias)) = self.map.get(&key) {
                out.push((*owner, alias.as_str()));
            }
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

    /// Compiles the matcher (longest phrases first, so "texas instruments inc" beats
    /// "texas instruments" at the same position).
    pub(crate) fn build(self) -> Result<PhraseMatcher, regex::Error> {
        if self.map.is_empty() {
            return Ok(PhraseMatcher::default());
        }
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let alts: Vec<String> = keys
            .iter()
            .map(|k| {
                k.split(' ')
                    .map(|w| format!(" {} ", regex::escape(w)))
                    .collect::<String>()
            })
            .collect();
        let re = regex::RegexBuilder::new(&format!("(?:{})", alts.join("|")))
            .size_limit(64 << 20)
            .build()?;
        Ok(PhraseMatcher {
            regex: Some(re),
            map: self.map,
        })
    }
}
