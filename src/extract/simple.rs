//! The CSS selectors the streaming extractor evaluates without a tree:
//! compound selectors (type or `*`, `#id`, `.class`, `[attr]`,
//! `[attr op "value"]`) joined by descendant and child combinators, and
//! lists of them. Anything else (sibling combinators, pseudo-classes,
//! namespaces, escapes, attribute flags) is refused here, and the source
//! keeps the DOM path.
//!
//! Matching follows the `selectors` crate as scraper drives it: names
//! of HTML elements and attributes compared in lower case, ids and
//! classes case-sensitively (scraper matches in no-quirks mode), the
//! attribute values that HTML compares ASCII-case-insensitively so
//! compared.

/// A selector list the streaming extractor can evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Simple {
    alts: Vec<Complex>,
}

/// Compounds from the subject (first) to the leftmost; `combs[i]` joins
/// `parts[i]` to `parts[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Complex {
    parts: Vec<Compound>,
    combs: Vec<Comb>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comb {
    Descendant,
    Child,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Compound {
    tag: Option<String>,
    ids: Vec<String>,
    classes: Vec<String>,
    attrs: Vec<AttrSel>,
    /// Set by [`Simple::number`]: the tag's interned index, and the bits
    /// of the ids and classes in the numbering; `None` where the names
    /// are compared as strings.
    tag_k: Option<u16>,
    id_mask: Option<u64>,
    class_mask: Option<u64>,
}

/// The ids and classes of a plan's selectors, numbered (at most 64 of
/// each) so that an element's can be found once, as a bit set, when it
/// opens, instead of once per selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Numbering {
    pub(crate) ids: Vec<String>,
    pub(crate) classes: Vec<String>,
}

impl Numbering {
    /// The bit of `name` in `list`, numbering it if there is room.
    fn bit(list: &mut Vec<String>, name: &str) -> Option<u64> {
        let i = match list.iter().position(|x| x == name) {
            Some(i) => i,
            None if list.len() < 64 => {
                list.push(name.to_string());
                list.len() - 1
            }
            None => return None,
        };
        Some(1 << i)
    }

    fn mask(list: &mut Vec<String>, names: &[String]) -> Option<u64> {
        names
            .iter()
            .try_fold(0u64, |m, n| Some(m | Self::bit(list, n)?))
    }

    /// The bits of the numbered names in `list` that are among `words`.
    pub(crate) fn bits_of<'w>(list: &[String], words: impl Iterator<Item = &'w str>) -> u64 {
        let mut m = 0u64;
        for w in words {
            if let Some(i) = list.iter().position(|x| x == w) {
                m |= 1 << i;
            }
        }
        m
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrSel {
    name: String,
    op: Option<(Op, String, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Includes,
    Dash,
    Prefix,
    Suffix,
    Substring,
}

/// What the matcher needs of an element.
pub(crate) trait El {
    /// The local name (lower case, as the tokenizer gives it).
    fn name(&self) -> &str;
    /// The value of an attribute by (lower-case) local name.
    fn attr(&self, name: &str) -> Option<&str>;
    /// The name's interned index (the `tag_id` given to
    /// [`Simple::number`]), when the element knows it.
    fn known(&self) -> Option<u16> {
        None
    }
    /// The bits, in the [`Numbering`] given to [`Simple::number`], of the
    /// element's id and of its classes, when the element knows them.
    fn bits(&self) -> Option<(u64, u64)> {
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum M {
    Yes,
    Local,
    Global,
}

impl Simple {
    /// Parses `s`, or `None` when it uses anything outside the subset.
    pub(crate) fn parse(s: &str) -> Option<Simple> {
        let mut p = P {
            b: s.as_bytes(),
            i: 0,
        };
        let mut alts = Vec::new();
        loop {
            p.ws();
            alts.push(p.complex()?);
            p.ws();
            match p.peek() {
                None => break,
                Some(b',') => p.i += 1,
                Some(_) => return None,
            }
        }
        Some(Simple { alts })
    }

    /// Numbers the tags (by `tag_id`, `None` for a name it does not
    /// intern), ids and classes of the selector, for elements that know
    /// their [`El::known`] index and [`El::bits`]. Names that do not fit
    /// the numbering stay compared as strings.
    pub(crate) fn number(&mut self, tag_id: &dyn Fn(&str) -> Option<u16>, n: &mut Numbering) {
        for c in &mut self.alts {
            for p in &mut c.parts {
                p.tag_k = p.tag.as_deref().and_then(tag_id);
                p.id_mask = Numbering::mask(&mut n.ids, &p.ids);
                p.class_mask = Numbering::mask(&mut n.classes, &p.classes);
            }
        }
    }

    /// Calls `f` with each attribute name whose value the matcher reads
    /// (`id` for `#id` and `class` for `.class` unless [`Simple::number`]
    /// numbered them).
    pub(crate) fn attr_names(&self, f: &mut dyn FnMut(&str)) {
        for c in &self.alts {
            for p in &c.parts {
                if !p.ids.is_empty() && p.id_mask.is_none() {
                    f("id");
                }
                if !p.classes.is_empty() && p.class_mask.is_none() {
                    f("class");
                }
                for a in &p.attrs {
                    f(&a.name);
                }
            }
        }
    }

    /// Whether `path[path.len() - 1]` matches, `path` being it and its
    /// ancestors, root first.
    pub(crate) fn matches<E: El>(&self, path: &[E]) -> bool {
        let Some(last) = path.len().checked_sub(1) else {
            return false;
        };
        let e = &path[last];
        self.alts
            .iter()
            .any(|c| c.parts[0].may_match(e) && c.at(0, path, last) == M::Yes)
    }
}

impl Complex {
    fn at<E: El>(&self, k: usize, path: &[E], idx: usize) -> M {
        if !self.parts[k].matches(&path[idx]) {
            return M::Local;
        }
        let Some(comb) = self.combs.get(k) else {
            return M::Yes;
        };
        match comb {
            Comb::Child => {
                if idx == 0 {
                    return M::Global;
                }
                self.at(k + 1, path, idx - 1)
            }
            Comb::Descendant => {
                for j in (0..idx).rev() {
                    match self.at(k + 1, path, j) {
                        M::Yes => return M::Yes,
                        M::Global => return M::Global,
                        M::Local => {}
                    }
                }
                M::Global
            }
        }
    }
}

impl Compound {
    /// The tests by number (tag index, id and class bits) that both the
    /// selector and the element can make: `false` only where
    /// [`Compound::matches`] is `false`.
    #[inline]
    fn may_match<E: El>(&self, e: &E) -> bool {
        if let (Some(k), Some(ek)) = (self.tag_k, e.known())
            && k != ek
        {
            return false;
        }
        let Some((ids, classes)) = e.bits() else {
            return true;
        };
        self.id_mask.is_none_or(|m| ids & m == m)
            && self.class_mask.is_none_or(|m| classes & m == m)
    }

    fn matches<E: El>(&self, e: &E) -> bool {
        if !self.may_match(e) {
            return false;
        }
        if let Some(t) = &self.tag
            && (self.tag_k.is_none() || e.known().is_none())
            && t != e.name()
        {
            return false;
        }
        // What `may_match` tested by number is not tested again by string.
        let numbered = e.bits().is_some();
        self.strings(
            e,
            !(numbered && self.id_mask.is_some()),
            !(numbered && self.class_mask.is_some()),
        )
    }

    /// The tests by attribute value: ids and classes when asked, and the
    /// attribute selectors.
    fn strings<E: El>(&self, e: &E, ids: bool, classes: bool) -> bool {
        if ids && !self.ids.is_empty() {
            let Some(id) = e.attr("id") else {
                return false;
            };
            if self.ids.iter().any(|i| i != id) {
                return false;
            }
        }
        if classes && !self.classes.is_empty() {
            let Some(class) = e.attr("class") else {
                return false;
            };
            if !self
                .classes
                .iter()
                .all(|c| class.split_ascii_whitespace().any(|x| x == c))
            {
                return false;
            }
        }
        self.attrs.iter().all(|a| {
            let Some(v) = e.attr(&a.name) else {
                return false;
            };
            let Some((op, s, ci)) = &a.op else {
                return true;
            };
            eval(*op, v, s, *ci)
        })
    }
}

/// `selectors::attr::AttrSelectorOperator::eval_str`, for its two case
/// sensitivities.
fn eval(op: Op, e: &str, s: &str, ci: bool) -> bool {
    let eq = |a: &[u8], b: &[u8]| {
        if ci {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let (eb, sb) = (e.as_bytes(), s.as_bytes());
    match op {
        Op::Equal => eq(eb, sb),
        Op::Prefix => !sb.is_empty() && eb.len() >= sb.len() && eq(&eb[..sb.len()], sb),
        Op::Suffix => !sb.is_empty() && eb.len() >= sb.len() && eq(&eb[eb.len() - sb.len()..], sb),
        Op::Substring => {
            !sb.is_empty()
                && if ci {
                    eb.windows(sb.len()).any(|w| w.eq_ignore_ascii_case(sb))
                } else {
                    e.contains(s)
                }
        }
        Op::Includes => {
            !sb.is_empty()
                && e.split([' ', '\t', '\n', '\r', '\x0C'])
                    .any(|part| eq(part.as_bytes(), sb))
        }
        Op::Dash => eq(eb, sb) || (eb.get(sb.len()) == Some(&b'-') && eq(&eb[..sb.len()], sb)),
    }
}

/// The attributes whose values HTML compares ASCII-case-insensitively
/// (the `selectors` crate's list).
fn case_insensitive(name: &str) -> bool {
    matches!(
        name,
        "accept"
            | "accept-charset"
            | "align"
            | "alink"
            | "axis"
            | "bgcolor"
            | "charset"
            | "checked"
            | "clear"
            | "codetype"
            | "color"
            | "compact"
            | "declare"
            | "defer"
            | "dir"
            | "direction"
            | "disabled"
            | "enctype"
            | "face"
            | "frame"
            | "hreflang"
            | "http-equiv"
            | "lang"
            | "language"
            | "link"
            | "media"
            | "method"
            | "multiple"
            | "nohref"
            | "noresize"
            | "noshade"
            | "nowrap"
            | "readonly"
            | "rel"
            | "rev"
            | "rules"
            | "scope"
            | "scrolling"
            | "selected"
            | "shape"
            | "target"
            | "text"
            | "type"
            | "valign"
            | "valuetype"
            | "vlink"
    )
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips whitespace; whether there was any.
    fn ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0C')) {
            self.i += 1;
        }
        self.i > start
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.i;
        let first = |c: u8| c.is_ascii_alphabetic() || c == b'_';
        match (self.peek(), self.b.get(self.i + 1).copied()) {
            (Some(c), _) if first(c) => {}
            (Some(b'-'), Some(c)) if first(c) => {}
            _ => return None,
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .map(str::to_string)
    }

    fn complex(&mut self) -> Option<Complex> {
        let mut parts = vec![self.compound()?];
        let mut combs = Vec::new();
        loop {
            let had_ws = self.ws();
            match self.peek() {
                None | Some(b',') => break,
                Some(b'>') => {
                    self.i += 1;
                    self.ws();
                    combs.push(Comb::Child);
                }
                Some(_) if had_ws => combs.push(Comb::Descendant),
                Some(_) => return None,
            }
            parts.push(self.compound()?);
        }
        parts.reverse();
        combs.reverse();
        Some(Complex { parts, combs })
    }

    fn compound(&mut self) -> Option<Compound> {
        let mut c = Compound::default();
        let mut any = false;
        if self.peek() == Some(b'*') {
            self.i += 1;
            any = true;
        } else if let Some(t) = self.ident() {
            c.tag = Some(t.to_ascii_lowercase());
            any = true;
        }
        loop {
            match self.peek() {
                Some(b'#') => {
                    self.i += 1;
                    c.ids.push(self.ident()?);
                }
                Some(b'.') => {
                    self.i += 1;
                    c.classes.push(self.ident()?);
                }
                Some(b'[') => {
                    self.i += 1;
                    c.attrs.push(self.attr()?);
                }
                _ => break,
            }
            any = true;
        }
        any.then_some(c)
    }

    fn attr(&mut self) -> Option<AttrSel> {
        self.ws();
        let name = self.ident()?.to_ascii_lowercase();
        self.ws();
        let op = match self.peek()? {
            b']' => {
                self.i += 1;
                return Some(AttrSel { name, op: None });
            }
            b'=' => Op::Equal,
            c => {
                let op = match c {
                    b'~' => Op::Includes,
                    b'|' => Op::Dash,
                    b'^' => Op::Prefix,
                    b'$' => Op::Suffix,
                    b'*' => Op::Substring,
                    _ => return None,
                };
                self.i += 1;
                if self.peek() != Some(b'=') {
                    return None;
                }
                op
            }
        };
        self.i += 1;
        self.ws();
        let value = match self.peek()? {
            q @ (b'"' | b'\'') => {
                self.i += 1;
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == q {
                        break;
                    }
                    if matches!(c, b'\\' | b'\n' | b'\r' | b'\x0C') {
                        return None;
                    }
                    self.i += 1;
                }
                self.peek()?;
                let v = std::str::from_utf8(&self.b[start..self.i])
                    .ok()?
                    .to_string();
                self.i += 1;
                v
            }
            _ => self.ident()?,
        };
        if op == Op::Includes && (value.is_empty() || value.contains([' ', '\t'])) {
            return None;
        }
        self.ws();
        if self.peek()? != b']' {
            return None;
        }
        self.i += 1;
        let ci = case_insensitive(&name);
        Some(AttrSel {
            name,
            op: Some((op, value, ci)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T(&'static str, Vec<(&'static str, &'static str)>);
    impl El for T {
        fn name(&self) -> &str {
            self.0
        }
        fn attr(&self, name: &str) -> Option<&str> {
            self.1.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        }
    }

    #[test]
    fn the_subset_parses_and_the_rest_is_refused() {
        for ok in [
            "table#products tbody tr",
            "td.pn > a",
            "#company-profile dd.name, h1",
            "meta[property=\"og:title\"]",
            "a[href^='/p/']",
            "DIV",
            "*",
        ] {
            assert!(Simple::parse(ok).is_some(), "{ok}");
        }
        for no in [
            "li + li",
            "li ~ li",
            "tr:nth-child(2)",
            "div:has(a)",
            "a\\:b",
            "[x=\"a\" i]",
            "svg|rect",
            "td:first-child",
            "",
            "a,",
        ] {
            assert!(Simple::parse(no).is_none(), "{no}");
        }
    }

    #[test]
    fn combinators_match_against_the_ancestors() {
        let path = [
            T("html", vec![]),
            T("body", vec![]),
            T("table", vec![("id", "products")]),
            T("tbody", vec![]),
            T("tr", vec![("class", "row  odd")]),
            T("td", vec![("type", "PN")]),
        ];
        let m = |s: &str| Simple::parse(s).expect("parses").matches(&path);
        assert!(m("#products td"));
        assert!(m("tr.odd > td"));
        assert!(m("table > tbody > tr > td"));
        assert!(m("td[type=pn]"));
        assert!(!m("table > td"));
        assert!(!m("tr.even td"));
        assert!(!m("body > td"));
        assert!(m("html td"));
        assert!(m("body tr td"));
    }

    /// An element that knows its tag index and its id and class bits, as
    /// the streaming path's open elements do.
    struct N(T, Option<u16>, (u64, u64));
    impl El for N {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn attr(&self, name: &str) -> Option<&str> {
            self.0.attr(name)
        }
        fn known(&self) -> Option<u16> {
            self.1
        }
        fn bits(&self) -> Option<(u64, u64)> {
            Some(self.2)
        }
    }

    #[test]
    fn numbered_names_match_as_the_strings_do() {
        const TAGS: [&str; 4] = ["div", "td", "p", "a"];
        let tag_id = |n: &str| TAGS.iter().position(|t| *t == n).map(|i| i as u16);
        // 70 classes first, so that the later ones do not fit in the
        // numbering and stay compared as strings.
        let many: Vec<String> = (0..70).map(|i| format!(".c{i}")).collect();
        let mut sources: Vec<String> = vec![many.join(", ")];
        sources.extend(
            [
                "div.a.b",
                "#x",
                "#x#y",
                "#x#x",
                "td.mfr",
                "my-el.a",
                "my-el",
                "[class~=a]",
                "[id=x] td",
                "div > .c3",
                ".c69",
                ".late",
                "div.late #y",
                "p a.a",
                "*.b",
            ]
            .map(String::from),
        );
        let plain: Vec<Simple> = sources
            .iter()
            .map(|s| Simple::parse(s).expect("parses"))
            .collect();
        let mut names = Numbering::default();
        let mut numbered = plain.clone();
        for sel in &mut numbered {
            sel.number(&tag_id, &mut names);
        }
        assert_eq!(names.classes.len(), 64, "the numbering is full");
        let els: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("div", vec![("class", "a b")]),
            ("div", vec![("class", "late"), ("id", "x")]),
            ("td", vec![("class", "mfr c3"), ("id", "y")]),
            ("my-el", vec![("class", " a  c69 ")]),
            ("p", vec![("id", "x")]),
            ("a", vec![("class", "a b late")]),
            ("span", vec![("class", "c63")]),
            ("div", vec![]),
        ];
        let mk = |i: usize| {
            let (n, a) = &els[i];
            T(n, a.clone())
        };
        let bits = |t: &T| {
            let id = t
                .attr("id")
                .map_or(0, |v| Numbering::bits_of(&names.ids, std::iter::once(v)));
            let class = t.attr("class").map_or(0, |v| {
                Numbering::bits_of(&names.classes, v.split_ascii_whitespace())
            });
            (id, class)
        };
        let mut checked = 0;
        let mut hits = 0;
        for a in 0..els.len() {
            for b in 0..els.len() {
                for c in 0..els.len() {
                    let path: Vec<T> = [a, b, c].into_iter().map(mk).collect();
                    let npath: Vec<N> = [a, b, c]
                        .into_iter()
                        .map(|i| {
                            let t = mk(i);
                            let k = Some(tag_id(t.0).unwrap_or(u16::MAX));
                            let b = bits(&t);
                            N(t, k, b)
                        })
                        .collect();
                    for (p, n) in plain.iter().zip(&numbered) {
                        let want = p.matches(&path);
                        assert_eq!(n.matches(&npath), want, "{p:?} on {a} {b} {c}");
                        checked += 1;
                        hits += usize::from(want);
                    }
                }
            }
        }
        assert!(hits > 100 && hits < checked - 100, "{hits} of {checked}");
    }
}
