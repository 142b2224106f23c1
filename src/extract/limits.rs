//! Bounds on the cost of one HTML page.
//!
//! html5ever and the selectors do work that grows with the nesting depth
//! of the page (scope checks walk the stack of open elements, descendant
//! combinators walk ancestors) and with the attributes of one element
//! (duplicates are looked for among those already read): a hostile page
//! under the body cap (512 KB of nested `<ul><li>`, 100k nested `<div>`,
//! one element with 400k attributes) once cost 22–80 s of CPU. Three
//! layers keep every page far below ~2 s:
//!
//! 1. [`prescan`]: one linear pass over the text, before any parsing, that
//!    follows the tree builder's main rules closely enough (void elements,
//!    raw text, implied ends of `li`, `p`, `td`, `tr`, `option`, …, end
//!    tags that are ignored) to measure nesting depth, attributes per
//!    element and elements, and refuses the page with the limit named.
//! 2. [`parse`]: html5ever fed in slices, giving up once it has spent
//!    [`HtmlLimits::parse_time`] (for a page that fools the pre-scan), as
//!    measured by the caller's [`Elapsed`] (`check` gives the thread's CPU
//!    time): this module reads no clock.
//! 3. [`check_tree`]: the parsed tree's real depth and size, before any
//!    selector runs or the recursive text collection starts.
//!
//! Real pages stay far below the limits: Chromium's parser itself caps the
//! tree at 512 levels, real catalogue pages nest 15–40 deep with a handful
//! of attributes per element, and an 8 MiB page holds ~300k elements.

use std::collections::HashMap;
use std::time::Duration;

use scraper::{Html, HtmlTreeSink};

use super::ExtractError;

/// How much one page may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtmlLimits {
    /// Elements open inside one another, as the pre-scan counts them.
    pub max_depth: usize,
    /// Depth of the parsed tree (above `max_depth`: the pre-scan's count
    /// misses implied elements such as `tbody`).
    pub max_tree_depth: usize,
    /// Attributes on one tag.
    pub max_attributes: usize,
    /// Elements (start tags) on the page.
    pub max_elements: usize,
    /// Time html5ever may take on one page (the thread's CPU time on
    /// Linux, else wall time).
    pub parse_time: Duration,
}

/// The limits every page is held to.
pub const HTML_LIMITS: HtmlLimits = HtmlLimits {
    max_depth: 512,
    max_tree_depth: 1024,
    max_attributes: 256,
    max_elements: 500_000,
    parse_time: Duration::from_secs(2),
};

/// Bytes fed to html5ever between two looks at the clock.
pub(crate) const SLICE: usize = 64 * 1024;

fn refused(limit: &'static str, max: String, detail: String) -> ExtractError {
    ExtractError::TooComplex { limit, max, detail }
}

/// How long the parse has run so far, as the caller measures it (from
/// when the caller started it): `extract` is pure and reads no clock.
pub type Elapsed<'a> = &'a dyn Fn() -> Duration;

/// Parses `text` as a document within `limits`: pre-scan, bounded parse,
/// tree check. `elapsed` is looked at between slices.
pub fn parse(text: &str, limits: &HtmlLimits, elapsed: Elapsed<'_>) -> Result<Html, ExtractError> {
    prescan(text, limits)?;
    parse_scanned(text, limits, elapsed)
}

/// [`parse`] of a page [`prescan`] already let through.
pub(crate) fn parse_scanned(
    text: &str,
    limits: &HtmlLimits,
    elapsed: Elapsed<'_>,
) -> Result<Html, ExtractError> {
    let doc = if text.len() <= SLICE {
        Html::parse_document(text)
    } else {
        use html5ever::tendril::TendrilSink;
        let mut parser = html5ever::driver::parse_document(
            HtmlTreeSink::new(Html::new_document()),
            Default::default(),
        );
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(SLICE);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let (slice, tail) = rest.split_at(cut);
            parser.process(html5ever::tendril::StrTendril::from_slice(slice));
            rest = tail;
            if !rest.is_empty() && elapsed() > limits.parse_time {
                return Err(out_of_time(limits, text.len() - rest.len(), text.len()));
            }
        }
        parser.finish()
    };
    check_tree(&doc, limits)?;
    Ok(doc)
}

/// The refusal of a page whose parse ran out of time after `done` of
/// `total` bytes.
pub(crate) fn out_of_time(limits: &HtmlLimits, done: usize, total: usize) -> ExtractError {
    refused(
        "parse time",
        humantime::format_duration(limits.parse_time).to_string(),
        format!("parsing was stopped after {done} of {total} bytes"),
    )
}

/// The refusal of a parsed tree deeper than [`HtmlLimits::max_tree_depth`].
pub(crate) fn too_deep_tree(limits: &HtmlLimits) -> ExtractError {
    refused(
        "depth",
        limits.max_tree_depth.to_string(),
        format!(
            "the parsed page nests elements more than {} deep",
            limits.max_tree_depth
        ),
    )
}

/// The refusal of a parsed tree with more than
/// [`HtmlLimits::max_elements`] elements.
pub(crate) fn too_many(limits: &HtmlLimits, elements: usize) -> ExtractError {
    refused(
        "elements",
        limits.max_elements.to_string(),
        format!("the parsed page has {elements} elements"),
    )
}

/// The parsed tree's depth and element count, in one walk.
pub fn check_tree(doc: &Html, limits: &HtmlLimits) -> Result<(), ExtractError> {
    use ego_tree::iter::Edge;
    let (mut depth, mut elements) = (0usize, 0usize);
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(n) if n.value().is_element() => {
                depth += 1;
                elements += 1;
                if depth > limits.max_tree_depth {
                    return Err(too_deep_tree(limits));
                }
            }
            Edge::Close(n) if n.value().is_element() => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if elements > limits.max_elements {
        return Err(too_many(limits, elements));
    }
    Ok(())
}

// Flags of the element names the pre-scan knows.
const VOID: u16 = 1;
const RAW: u16 = 1 << 1;
const SPECIAL: u16 = 1 << 2;
/// Ends the search of an end tag in the default scope.
const SCOPE: u16 = 1 << 3;
/// Its start closes an open `p`.
const CLOSES_P: u16 = 1 << 4;
const FOREIGN: u16 = 1 << 5;
/// Never pushed (merged into the document's own).
const ROOT: u16 = 1 << 6;
/// Its start leaves foreign content.
const BREAKS_OUT: u16 = 1 << 7;
const HEADING: u16 = 1 << 8;
/// Table parts: their end tags are looked for in table scope.
const TABLE_PART: u16 = 1 << 9;

const KNOWN: &[(&str, u16)] = &[
    ("html", ROOT | SPECIAL | SCOPE),
    ("head", ROOT | SPECIAL),
    ("body", ROOT | SPECIAL | BREAKS_OUT),
    ("area", VOID | SPECIAL),
    ("base", VOID | SPECIAL),
    ("basefont", VOID | SPECIAL),
    ("bgsound", VOID | SPECIAL),
    ("br", VOID | SPECIAL | BREAKS_OUT),
    ("col", VOID | SPECIAL),
    ("embed", VOID | SPECIAL | BREAKS_OUT),
    ("frame", VOID | SPECIAL),
    ("hr", VOID | SPECIAL | CLOSES_P | BREAKS_OUT),
    ("img", VOID | SPECIAL | BREAKS_OUT),
    ("input", VOID | SPECIAL),
    ("keygen", VOID | SPECIAL),
    ("link", VOID | SPECIAL),
    ("meta", VOID | SPECIAL | BREAKS_OUT),
    ("param", VOID | SPECIAL),
    ("source", VOID | SPECIAL),
    ("track", VOID | SPECIAL),
    ("wbr", VOID | SPECIAL),
    ("script", RAW | SPECIAL),
    ("style", RAW | SPECIAL),
    ("textarea", RAW | SPECIAL),
    ("title", RAW | SPECIAL),
    ("xmp", RAW | SPECIAL | CLOSES_P),
    ("iframe", RAW | SPECIAL),
    ("noembed", RAW | SPECIAL),
    ("noframes", RAW | SPECIAL),
    ("noscript", RAW | SPECIAL),
    ("plaintext", RAW | SPECIAL | CLOSES_P),
    ("address", SPECIAL | CLOSES_P),
    ("article", SPECIAL | CLOSES_P),
    ("aside", SPECIAL | CLOSES_P),
    ("blockquote", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("center", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("details", SPECIAL | CLOSES_P),
    ("dialog", CLOSES_P),
    ("dir", SPECIAL | CLOSES_P),
    ("div", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("dl", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("fieldset", SPECIAL | CLOSES_P),
    ("figcaption", SPECIAL | CLOSES_P),
    ("figure", SPECIAL | CLOSES_P),
    ("footer", SPECIAL | CLOSES_P),
    ("header", SPECIAL | CLOSES_P),
    ("hgroup", SPECIAL | CLOSES_P),
    ("main", SPECIAL | CLOSES_P),
    ("menu", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("nav", SPECIAL | CLOSES_P),
    ("ol", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("ul", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("p", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("pre", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("listing", SPECIAL | CLOSES_P | BREAKS_OUT),
    ("search", SPECIAL | CLOSES_P),
    ("section", SPECIAL | CLOSES_P),
    ("summary", SPECIAL | CLOSES_P),
    ("form", SPECIAL | CLOSES_P),
    ("h1", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("h2", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("h3", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("h4", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("h5", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("h6", SPECIAL | CLOSES_P | HEADING | BREAKS_OUT),
    ("li", SPECIAL | BREAKS_OUT),
    ("dd", SPECIAL | BREAKS_OUT),
    ("dt", SPECIAL | BREAKS_OUT),
    (
        "table",
        SPECIAL | SCOPE | CLOSES_P | TABLE_PART | BREAKS_OUT,
    ),
    ("caption", SPECIAL | SCOPE | TABLE_PART),
    ("colgroup", SPECIAL | TABLE_PART),
    ("tbody", SPECIAL | TABLE_PART),
    ("thead", SPECIAL | TABLE_PART),
    ("tfoot", SPECIAL | TABLE_PART),
    ("tr", SPECIAL | TABLE_PART),
    ("td", SPECIAL | SCOPE | TABLE_PART),
    ("th", SPECIAL | SCOPE | TABLE_PART),
    ("applet", SPECIAL | SCOPE),
    ("marquee", SPECIAL | SCOPE),
    ("object", SPECIAL | SCOPE),
    ("template", SPECIAL | SCOPE),
    ("button", SPECIAL),
    ("select", SPECIAL),
    ("option", 0),
    ("optgroup", 0),
    ("a", 0),
    ("nobr", BREAKS_OUT),
    ("b", BREAKS_OUT),
    ("big", BREAKS_OUT),
    ("code", BREAKS_OUT),
    ("em", BREAKS_OUT),
    ("i", BREAKS_OUT),
    ("ruby", BREAKS_OUT),
    ("s", BREAKS_OUT),
    ("small", BREAKS_OUT),
    ("span", BREAKS_OUT),
    ("strong", BREAKS_OUT),
    ("strike", BREAKS_OUT),
    ("sub", BREAKS_OUT),
    ("sup", BREAKS_OUT),
    ("tt", BREAKS_OUT),
    ("u", BREAKS_OUT),
    ("var", BREAKS_OUT),
    ("svg", FOREIGN),
    ("math", FOREIGN),
];

/// FNV-1a: element names are short, and SipHash cost the pre-scan a
/// third of its time.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Element names as small numbers; the names of [`KNOWN`] first.
struct Names {
    index: &'static [Vec<(&'static [u8], u32)>],
    ids: FnvMap<Vec<u8>, u32>,
    flags: Vec<u16>,
    buf: Vec<u8>,
}

/// Buckets of (name, id).
type Index = Vec<Vec<(&'static [u8], u32)>>;

/// The names of [`KNOWN`] by length and first letter (either case).
static KNOWN_INDEX: std::sync::LazyLock<Index> = std::sync::LazyLock::new(|| {
    let mut index = vec![Vec::new(); 16 * 32];
    for (id, (name, _)) in KNOWN.iter().enumerate() {
        if let (Some(slot), Ok(id)) = (index.get_mut(bucket(name.as_bytes())), u32::try_from(id)) {
            slot.push((name.as_bytes(), id));
        }
    }
    index
});

fn bucket(name: &[u8]) -> usize {
    let first = name.first().copied().unwrap_or(0);
    (name.len().min(15) << 5) | usize::from(first & 31)
}

/// The id of a name of [`KNOWN`], compared without regard to case.
fn known_id(index: &[Vec<(&'static [u8], u32)>], raw: &[u8]) -> Option<u32> {
    index
        .get(bucket(raw))?
        .iter()
        .find(|(n, _)| *n == raw || n.eq_ignore_ascii_case(raw))
        .map(|&(_, id)| id)
}

impl Names {
    fn new() -> Names {
        Names {
            index: KNOWN_INDEX.as_slice(),
            ids: FnvMap::default(),
            flags: KNOWN.iter().map(|(_, f)| *f).collect(),
            buf: Vec::new(),
        }
    }

    fn intern(&mut self, raw: &[u8]) -> u32 {
        if let Some(id) = known_id(self.index, raw) {
            return id;
        }
        let key: &[u8] = if raw.iter().any(u8::is_ascii_uppercase) {
            self.buf.clear();
            self.buf.extend(raw.iter().map(u8::to_ascii_lowercase));
            &self.buf
        } else {
            raw
        };
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let key = key.to_vec();
        let id = u32::try_from(self.flags.len()).unwrap_or(u32::MAX);
        self.ids.insert(key, id);
        self.flags.push(0);
        id
    }

    fn id(&self, name: &str) -> u32 {
        known_id(self.index, name.as_bytes()).unwrap_or(u32::MAX)
    }

    fn flags(&self, id: u32) -> u16 {
        self.flags.get(id as usize).copied().unwrap_or(0)
    }
}

/// The stack of open elements as the pre-scan models it. Every lookup is
/// O(1) (per-name position stacks), so the scan stays linear.
struct Stack {
    elements: Vec<u32>,
    /// Positions on the stack of each name, by id.
    positions: Vec<Vec<usize>>,
    /// Positions of special, scope and foreign elements.
    special: Vec<usize>,
    scope: Vec<usize>,
    foreign: Vec<usize>,
}

impl Stack {
    fn top_of(&self, id: u32) -> Option<usize> {
        self.positions
            .get(id as usize)
            .and_then(|v| v.last().copied())
    }

    fn push(&mut self, id: u32, flags: u16) {
        let pos = self.elements.len();
        self.elements.push(id);
        let i = id as usize;
        if self.positions.len() <= i {
            self.positions.resize_with(i + 1, Vec::new);
        }
        self.positions[i].push(pos);
        if flags & SPECIAL != 0 {
            self.special.push(pos);
        }
        if flags & SCOPE != 0 {
            self.scope.push(pos);
        }
        if flags & FOREIGN != 0 {
            self.foreign.push(pos);
        }
    }

    /// Pops `pos` and everything above it.
    fn pop_to(&mut self, pos: usize) {
        while self.elements.len() > pos {
            let Some(id) = self.elements.pop() else {
                break;
            };
            let at = self.elements.len();
            if let Some(v) = self.positions.get_mut(id as usize) {
                v.pop();
            }
            for v in [&mut self.special, &mut self.scope, &mut self.foreign] {
                if v.last() == Some(&at) {
                    v.pop();
                }
            }
        }
    }
}

/// What the pre-scan measured of a page it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scan {
    /// Deepest nesting seen (`html` and `body` included).
    pub depth: usize,
    /// Start tags.
    pub elements: usize,
}

/// One linear pass over `text` that refuses a page exceeding `limits`
/// before html5ever sees it.
pub fn prescan(text: &str, limits: &HtmlLimits) -> Result<Scan, ExtractError> {
    let b = text.as_bytes();
    let n = b.len();
    let mut names = Names::new();
    let mut stack = Stack {
        elements: Vec::new(),
        positions: Vec::new(),
        special: Vec::new(),
        scope: Vec::new(),
        foreign: Vec::new(),
    };
    let id = |names: &Names, s: &str| names.id(s);
    let (p, li, ul, ol, dd, dt, dl) = (
        id(&names, "p"),
        id(&names, "li"),
        id(&names, "ul"),
        id(&names, "ol"),
        id(&names, "dd"),
        id(&names, "dt"),
        id(&names, "dl"),
    );
    let (td, th, tr, table, template, button) = (
        id(&names, "td"),
        id(&names, "th"),
        id(&names, "tr"),
        id(&names, "table"),
        id(&names, "template"),
        id(&names, "button"),
    );
    let (tbody, thead, tfoot, option, optgroup, a, nobr, form, select) = (
        id(&names, "tbody"),
        id(&names, "thead"),
        id(&names, "tfoot"),
        id(&names, "option"),
        id(&names, "optgroup"),
        id(&names, "a"),
        id(&names, "nobr"),
        id(&names, "form"),
        id(&names, "select"),
    );
    let plaintext = id(&names, "plaintext");
    let mut elements = 0usize;
    let mut deepest = 0usize;
    let mut i = 0usize;
    while let Some(off) = b.get(i..).and_then(|t| memchr::memchr(b'<', t)) {
        let lt = i + off;
        i = lt + 1;
        let Some(&c) = b.get(i) else { break };
        if c == b'!' {
            i = if b[i..].starts_with(b"!--") {
                comment_end(b, i + 3)
            } else if b[i..].starts_with(b"![CDATA[") && !stack.foreign.is_empty() {
                find(b, i, b"]]>").map_or(n, |e| e + 3)
            } else {
                find(b, i, b">").map_or(n, |e| e + 1)
            };
            continue;
        }
        if c == b'?' {
            i = find(b, i, b">").map_or(n, |e| e + 1);
            continue;
        }
        let end = c == b'/';
        let name_start = if end { i + 1 } else { i };
        if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            if end {
                // `</>` is dropped, `</ …>` is a bogus comment.
                i = find(b, i, b">").map_or(n, |e| e + 1);
            }
            continue;
        }
        let mut j = name_start;
        while j < n && !matches!(b[j], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>') {
            j += 1;
        }
        let name_end = j;
        let name = names.intern(&b[name_start..j]);
        let flags = names.flags(name);
        // Attributes, to the tag's `>`.
        let mut attributes = 0usize;
        let mut self_closing = false;
        loop {
            while j < n && matches!(b[j], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ') {
                j += 1;
            }
            if j >= n {
                break;
            }
            match b[j] {
                b'>' => {
                    j += 1;
                    break;
                }
                b'/' => {
                    j += 1;
                    self_closing = b.get(j) == Some(&b'>');
                    continue;
                }
                _ => {}
            }
            self_closing = false;
            attributes += 1;
            if attributes > limits.max_attributes {
                return Err(refused(
                    "attributes per element",
                    limits.max_attributes.to_string(),
                    format!(
                        "the element at byte {lt} has more than {} attributes",
                        limits.max_attributes
                    ),
                ));
            }
            j += 1;
            while j < n
                && !matches!(
                    b[j],
                    b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>' | b'='
                )
            {
                j += 1;
            }
            while j < n && matches!(b[j], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ') {
                j += 1;
            }
            if b.get(j) == Some(&b'=') {
                j += 1;
                while j < n && matches!(b[j], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ') {
                    j += 1;
                }
                match b.get(j) {
                    Some(&q @ (b'"' | b'\'')) => {
                        j = find(b, j + 1, &[q]).map_or(n, |e| e + 1);
                    }
                    _ => {
                        while j < n
                            && !matches!(b[j], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'>')
                        {
                            j += 1;
                        }
                    }
                }
            }
        }
        i = j;

        if end {
            end_tag(&mut stack, name, flags, table, template);
            continue;
        }
        elements += 1;
        if elements > limits.max_elements {
            return Err(refused(
                "elements",
                limits.max_elements.to_string(),
                format!(
                    "more than {} elements before byte {lt}",
                    limits.max_elements
                ),
            ));
        }
        let foreign = !stack.foreign.is_empty();
        if foreign && flags & BREAKS_OUT != 0 {
            if let Some(&f) = stack.foreign.last() {
                stack.pop_to(f);
            }
        } else if foreign {
            if !self_closing {
                stack.push(name, flags);
            }
            deepest = deepest.max(stack.elements.len() + 2);
            if stack.elements.len() + 2 > limits.max_depth {
                return Err(too_deep(limits, lt));
            }
            continue;
        }
        if flags & ROOT != 0 {
            continue;
        }
        // Implied ends.
        let above = |s: &Stack, x: u32, bound: &[u32]| -> Option<usize> {
            let pos = s.top_of(x)?;
            bound
                .iter()
                .all(|&b| s.top_of(b).is_none_or(|q| q < pos))
                .then_some(pos)
        };
        if flags & CLOSES_P != 0 {
            let scope_top = stack.scope.last().copied();
            if let Some(pos) = stack.top_of(p)
                && scope_top.is_none_or(|s| s < pos)
                && stack.top_of(button).is_none_or(|q| q < pos)
            {
                stack.pop_to(pos);
            }
        }
        if flags & HEADING != 0
            && let Some(&top) = stack.elements.last()
            && names.flags(top) & HEADING != 0
        {
            stack.pop_to(stack.elements.len() - 1);
        }
        let closes: Option<usize> = if name == li {
            above(&stack, li, &[ul, ol])
        } else if name == dd || name == dt {
            match (above(&stack, dd, &[dl]), above(&stack, dt, &[dl])) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            }
        } else if name == td || name == th {
            match (above(&stack, td, &[tr]), above(&stack, th, &[tr])) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            }
        } else if name == tr {
            above(&stack, tr, &[table])
        } else if name == tbody || name == thead || name == tfoot {
            [tbody, thead, tfoot]
                .iter()
                .filter_map(|&x| above(&stack, x, &[table]))
                .max()
        } else if name == option {
            stack
                .elements
                .last()
                .filter(|&&t| t == option)
                .map(|_| stack.elements.len() - 1)
        } else if name == optgroup {
            above(&stack, option, &[optgroup, select])
                .or_else(|| above(&stack, optgroup, &[select]))
        } else if name == a || name == nobr || name == button || name == select {
            stack.top_of(name)
        } else {
            None
        };
        if let Some(pos) = closes {
            stack.pop_to(pos);
        }
        // A row straight in a table gets an implied `tbody`.
        if name == tr
            && let Some(t) = stack.top_of(table)
            && [tbody, thead, tfoot]
                .iter()
                .all(|&x| stack.top_of(x).is_none_or(|q| q < t))
        {
            stack.push(tbody, names.flags(tbody));
        }
        if name == form && stack.top_of(form).is_some() {
            continue;
        }
        if flags & VOID != 0 {
            continue;
        }
        if name == plaintext {
            // Everything after is text.
            break;
        }
        if flags & RAW != 0 {
            i = raw_end(b, i, &b[name_start..name_end]);
            continue;
        }
        stack.push(name, flags);
        // `html` and `body` sit above everything the stack holds.
        deepest = deepest.max(stack.elements.len() + 2);
        if stack.elements.len() + 2 > limits.max_depth {
            return Err(too_deep(limits, lt));
        }
    }
    Ok(Scan {
        depth: deepest,
        elements,
    })
}

fn too_deep(limits: &HtmlLimits, at: usize) -> ExtractError {
    refused(
        "depth",
        limits.max_depth.to_string(),
        format!(
            "elements nest more than {} deep at byte {at}",
            limits.max_depth
        ),
    )
}

/// An end tag: pops to the matching open element when the tree builder
/// would, else ignores it (as it does).
fn end_tag(stack: &mut Stack, name: u32, flags: u16, table: u32, template: u32) {
    if flags & ROOT != 0 || flags & VOID != 0 {
        return;
    }
    let Some(pos) = stack.top_of(name) else {
        return;
    };
    if !stack.foreign.is_empty() && stack.foreign.last().is_some_and(|&f| f <= pos) {
        stack.pop_to(pos);
        return;
    }
    let allowed = if flags & TABLE_PART != 0 {
        // Looked for in table scope.
        let bound = stack.top_of(table).max(stack.top_of(template));
        bound.is_none_or(|q| q <= pos)
    } else if flags & SPECIAL != 0 {
        stack.scope.last().is_none_or(|&q| q <= pos)
    } else {
        // Any other end tag stops at the first special element.
        stack.special.last().is_none_or(|&q| q < pos)
    };
    if allowed {
        stack.pop_to(pos);
    }
}

/// Where a comment that starts at `from` (after `<!--`) ends: after `-->`
/// or `--!>`, or at once for `<!-->` and `<!--->`.
fn comment_end(b: &[u8], from: usize) -> usize {
    if b.get(from) == Some(&b'>') {
        return from + 1;
    }
    if b.get(from..from + 2) == Some(b"->") {
        return from + 2;
    }
    let mut k = from;
    while let Some(gt) = find(b, k, b">") {
        let before = &b[from..gt];
        if before.ends_with(b"--") || before.ends_with(b"--!") {
            return gt + 1;
        }
        k = gt + 1;
    }
    b.len()
}

/// The end of a raw text element's content (after its end tag).
fn raw_end(b: &[u8], from: usize, tag: &[u8]) -> usize {
    let mut k = from;
    while let Some(at) = find(b, k, b"</") {
        let s = at + 2;
        let e = s + tag.len();
        if b.get(s..e).is_some_and(|t| t.eq_ignore_ascii_case(tag))
            && b.get(e)
                .is_none_or(|c| matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>'))
        {
            return find(b, e, b">").map_or(b.len(), |g| g + 1);
        }
        k = at + 2;
    }
    b.len()
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = b.get(from..)?;
    match needle {
        [c] => memchr::memchr(*c, hay).map(|p| p + from),
        _ => memchr::memmem::find(hay, needle).map(|p| p + from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(html: &str) -> bool {
        prescan(html, &HTML_LIMITS).is_ok()
    }

    #[test]
    fn implied_ends_keep_sloppy_real_markup_shallow() {
        // 5000 unclosed <p>, <li>, <td>, <option>: flat, as browsers see it.
        for unit in [
            "<p>x",
            "<li>x",
            "<td>x",
            "<option>x",
            "<dt>a<dd>b",
            "<tr><td>x",
        ] {
            let page = format!("<ul><table><select><dl>{}", unit.repeat(5000));
            assert!(depth_ok(&page), "{unit}");
        }
        assert!(depth_ok(&"<div><span>x</div>".repeat(5000)));
        assert!(depth_ok(&"<br><img src=x><input>".repeat(5000)));
        assert!(depth_ok(&"<svg><path d='M0'/><g/></svg>".repeat(5000)));
        assert!(depth_ok(
            &"<script>if (a<b) { x = '<div><div>'; }</script>".repeat(5000)
        ));
        assert!(depth_ok(&"<!-- <div><div> -->".repeat(5000)));
    }

    #[test]
    fn deep_nesting_is_refused_with_the_limit_named() {
        for unit in [
            "<div>",
            "<ul><li>",
            "<b>",
            "<span><div>",
            "<table><tr><td>",
            "<div/>",
        ] {
            let e = prescan(&unit.repeat(2000), &HTML_LIMITS).unwrap_err();
            assert!(e.to_string().contains("depth limit is 512"), "{unit}: {e}");
        }
    }

    /// The parsed tree's depth (elements only).
    fn tree_depth(html: &str) -> usize {
        use ego_tree::iter::Edge;
        let doc = Html::parse_document(html);
        let (mut d, mut max) = (0usize, 0usize);
        for e in doc.tree.root().traverse() {
            match e {
                Edge::Open(n) if n.value().is_element() => {
                    d += 1;
                    max = max.max(d);
                }
                Edge::Close(n) if n.value().is_element() => d -= 1,
                _ => {}
            }
        }
        max
    }

    #[test]
    fn the_prescan_depth_follows_html5ever() {
        // Each pattern 300 times: the pre-scan's depth stays within a few
        // levels of the tree html5ever builds, whether that is flat or deep.
        let patterns = [
            "<div>",
            "<ul><li>",
            "<ul><li>x</li>",
            "<p>x",
            "<li>x",
            "<b>x",
            "<span><div>",
            "<div><span>x</div>",
            "<table><tr><td>",
            "<tr><td>x",
            "<td>x",
            "<option>x",
            "<dt>a<dd>b",
            "<a href=x>y",
            "<div/>",
            "<svg><g>",
            "<svg><path/></svg>",
            "<h1>a<h2>b",
            "<p><div>x</div>",
            "<font color=red>x",
            "<!-- <div> -->",
            "<script><div></script>",
            "<select><option>a",
            "<form><div>",
        ];
        for unit in patterns {
            let page = format!("<html><body>{}</body></html>", unit.repeat(300));
            let limits = HtmlLimits {
                max_depth: usize::MAX,
                ..HTML_LIMITS
            };
            let scan = prescan(&page, &limits).unwrap().depth;
            let tree = tree_depth(&page);
            let (lo, hi) = (tree.min(scan), tree.max(scan));
            // Off by a few levels at most (`html`, `body`, a `tr` of a
            // lone cell), never by a factor.
            assert!(hi - lo <= 3, "{unit}: pre-scan {scan}, html5ever {tree}");
        }
    }

    #[test]
    fn a_parse_over_its_time_is_stopped() {
        let page = "<p class=x>some text</p>".repeat(40_000);
        let quick = HtmlLimits {
            parse_time: Duration::from_micros(1),
            ..HTML_LIMITS
        };
        let t = std::time::Instant::now();
        let e = parse(&page, &quick, &|| t.elapsed()).unwrap_err();
        assert!(e.to_string().contains("the parse time limit is 1us"), "{e}");
        let t = std::time::Instant::now();
        assert!(parse(&page, &HTML_LIMITS, &|| t.elapsed()).is_ok());
    }

    #[test]
    fn attributes_and_elements_are_counted() {
        let mut tag = String::from("<div");
        for i in 0..300 {
            tag.push_str(&format!(" a{i}='>'"));
        }
        tag.push('>');
        let e = prescan(&tag, &HTML_LIMITS).unwrap_err();
        assert!(
            e.to_string().contains("attributes per element limit"),
            "{e}"
        );
        let e = prescan(&"<i></i>".repeat(500_001), &HTML_LIMITS).unwrap_err();
        assert!(e.to_string().contains("elements limit is 500000"), "{e}");
        assert_eq!(
            prescan(&"<i></i>".repeat(1000), &HTML_LIMITS)
                .unwrap()
                .elements,
            1000
        );
    }
}
