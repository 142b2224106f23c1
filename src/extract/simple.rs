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

    /// Calls `f` with each attribute name the selector tests (`id` for
    /// `#id`, `class` for `.class`).
    pub(crate) fn attr_names(&self, f: &mut dyn FnMut(&str)) {
        for c in &self.alts {
            for p in &c.parts {
                if !p.ids.is_empty() {
                    f("id");
                }
                if !p.classes.is_empty() {
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
        self.alts.iter().any(|c| c.at(0, path, last) == M::Yes)
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
    fn matches<E: El>(&self, e: &E) -> bool {
        if let Some(t) = &self.tag
            && t != e.name()
        {
            return false;
        }
        if !self.ids.is_empty() {
            let Some(id) = e.attr("id") else {
                return false;
            };
            if self.ids.iter().any(|i| i != id) {
                return false;
            }
        }
        if !self.classes.is_empty() {
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
}
