//! DOM-free extraction: a tokenizer, the tree builder's rules for
//! well-formed-enough pages re-enacted on a stack of open elements, and
//! the selectors of [`super::simple`] matched as each element opens.
//! Nothing is built for the parts of a page that no selector reads.
//!
//! The tokenizer is the byte-level one of [`super::tokens`]; a page it
//! gives up on ([`tokens::GiveUp`]: NUL bytes, `<!--` in a script, a
//! BOM inside the page) is read again from the start by html5ever's
//! tokenizer through a thin adapter ([`Sink`]). Both feed the same
//! [`Builder`] the same [`Tok`]s, and both look at the clock every
//! [`limits::SLICE`] bytes.
//!
//! The rules re-enacted are those of the insertion modes before the body,
//! "in body", "in table", "in table body", "in row" and "in cell":
//! implied `html`/`head`/`body`/`tbody`/`tr`, elements closed by others
//! (`p`, `li`, `dd`/`dt`, headings, cells, rows), ignored end tags,
//! `</p>` and `</br>` without a start, raw text (`script`, `style`,
//! `noscript`, `title`, `textarea`, …), the newline dropped after `<pre>`,
//! and the list of active formatting elements as far as it decides
//! nothing. Wherever the real tree builder would build a tree that this
//! stack does not mirror (foster parenting of table content, the adoption
//! agency with a furthest block, reconstructed formatting elements,
//! `template`, `select`, foreign content, `frameset`, attributes merged
//! into `html`/`body`, quirks mode that matters), the page is handed to
//! the DOM path ([`Outcome::Fallback`]) rather than risk a different
//! record. The differential test (`tests/it/stream_equal.rs`) holds both
//! paths to the same result.
//!
//! **Architecture Invariant:** for every page, [`extract`] returns
//! exactly what the DOM path returns, or `Fallback`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use smallvec::SmallVec;
use url::Url;

use super::tokens::{self, Flow, Tag, Tok};

use super::limits::{self, HtmlLimits};
use super::reading::{Raw, Read};
use super::simple::{El, Numbering, Simple};
use super::{ExtractError, HtmlSpec, clean_text};
use crate::record::FieldValue;

/// A spec's selectors, compiled for the streaming path.
#[derive(Debug, Clone)]
pub struct Plan {
    fields: Vec<Simple>,
    row: Option<Simple>,
    columns: Vec<Simple>,
    next: Option<Simple>,
    /// The attributes the selectors test or the fields read: the only
    /// ones kept on the stack (shared by every element that keeps one:
    /// no copy of the name per element).
    attrs: Vec<Arc<str>>,
    /// The selectors' ids and classes, found in each element as it opens.
    names: Numbering,
}

impl Plan {
    /// The plan of `spec`, or the first selector it cannot stream.
    pub(crate) fn new(spec: &HtmlSpec) -> Result<Plan, String> {
        let one = |s: &str| Simple::parse(s).ok_or_else(|| s.to_string());
        let mut fields = Vec::new();
        for (_, f) in &spec.fields {
            fields.push(one(&f.source)?);
        }
        let (mut row, mut columns) = (None, Vec::new());
        if let Some(items) = &spec.items {
            row = Some(one(&items.row.source)?);
            for (_, f) in &items.columns {
                columns.push(one(&f.source)?);
            }
        }
        let mut next = spec
            .next_page
            .as_ref()
            .map(|f| one(&f.source))
            .transpose()?;
        let mut names = Numbering::default();
        let tag_id = |n: &str| Some(known_id(n)).filter(|&k| k != OTHER);
        for sel in fields
            .iter_mut()
            .chain(&mut row)
            .chain(&mut columns)
            .chain(&mut next)
        {
            sel.number(&tag_id, &mut names);
        }
        let mut attrs: Vec<Arc<str>> = Vec::new();
        let mut want = |a: &str| {
            if !attrs.iter().any(|x| &**x == a) {
                attrs.push(Arc::from(a));
            }
        };
        for sel in fields.iter().chain(&row).chain(&columns).chain(&next) {
            sel.attr_names(&mut want);
        }
        for (_, f) in &spec.fields {
            f.attr.as_deref().map(&mut want);
        }
        if let Some(items) = &spec.items {
            for (_, f) in &items.columns {
                f.attr.as_deref().map(&mut want);
            }
        }
        if let Some(a) = spec.next_page.as_ref().and_then(|f| f.attr.as_deref()) {
            want(a);
        }
        Ok(Plan {
            fields,
            row,
            columns,
            next,
            attrs,
            names,
        })
    }
}

/// What the streaming path made of a page.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The raw values, the same as the DOM path's.
    Done(Raw),
    /// The page needs the DOM; why (for the trace).
    Fallback(&'static str),
}

/// Reads one page (the pre-scan has let it through): the byte-level
/// tokenizer of [`super::tokens`] first; a page it gives up on goes
/// through html5ever's tokenizer, fed in slices under the same time
/// bound. Both feed the same [`Builder`].
pub(crate) fn extract(
    plan: &Plan,
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    lim: &HtmlLimits,
    elapsed: limits::Elapsed<'_>,
) -> Result<Outcome, ExtractError> {
    match extract_fast(plan, spec, text, base, lim, elapsed) {
        Ok(done) => done,
        Err(why) => {
            tracing::trace!(
                why = why.0,
                "fast tokenizer gave up; html5ever tokenizes the page"
            );
            extract_html5ever(plan, spec, text, base, lim, elapsed)
        }
    }
}

/// The streaming path on the byte-level tokenizer only: `Err` when it
/// gives the page up.
pub(crate) fn extract_fast(
    plan: &Plan,
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    lim: &HtmlLimits,
    elapsed: limits::Elapsed<'_>,
) -> Result<Result<Outcome, ExtractError>, tokens::GiveUp> {
    let mut fast = Fast {
        b: Builder::new(plan, spec, base, lim),
        elapsed,
        next_look: limits::SLICE,
        total: text.len(),
    };
    tokens::tokenize(text, &mut fast)?;
    Ok(fast.b.outcome())
}

/// The byte-level tokenizer's sink: the builder, and the clock looked
/// at every [`limits::SLICE`] bytes.
struct Fast<'a, 'e> {
    b: Builder<'a>,
    elapsed: limits::Elapsed<'e>,
    next_look: usize,
    total: usize,
}

impl tokens::Sink for Fast<'_, '_> {
    fn token(&mut self, tok: Tok<'_>, pos: usize) -> Flow {
        let flow = self.b.token(tok);
        if pos >= self.next_look && pos < self.total {
            if (self.elapsed)() > self.b.lim.parse_time {
                self.b.error = Some(limits::out_of_time(self.b.lim, pos, self.total));
            }
            while self.next_look <= pos {
                self.next_look += limits::SLICE;
            }
        }
        if self.b.fallback.is_some() || self.b.error.is_some() {
            return Flow::Stop;
        }
        flow
    }
}

/// The streaming path on html5ever's tokenizer.
pub(crate) fn extract_html5ever(
    plan: &Plan,
    spec: &HtmlSpec,
    text: &str,
    base: &Url,
    lim: &HtmlLimits,
    elapsed: limits::Elapsed<'_>,
) -> Result<Outcome, ExtractError> {
    let b = Builder::new(plan, spec, base, lim);
    let tok = Tokenizer::new(Sink { b: RefCell::new(b) }, TokenizerOpts::default());
    let input = BufferQueue::default();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(limits::SLICE);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (slice, tail) = rest.split_at(cut);
        input.push_back(StrTendril::from_slice(slice));
        while !matches!(tok.feed(&input), TokenizerResult::Done) {}
        rest = tail;
        {
            let b = tok.sink.b.borrow();
            if let Some(e) = &b.error {
                return Err(e.clone());
            }
            if let Some(why) = b.fallback {
                return Ok(Outcome::Fallback(why));
            }
        }
        if !rest.is_empty() && elapsed() > lim.parse_time {
            return Err(limits::out_of_time(
                lim,
                text.len() - rest.len(),
                text.len(),
            ));
        }
    }
    tok.end();
    tok.sink.b.into_inner().outcome()
}

struct Sink<'a> {
    b: RefCell<Builder<'a>>,
}

impl TokenSink for Sink<'_> {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut b = self.b.borrow_mut();
        if b.fallback.is_some() || b.error.is_some() {
            return TokenSinkResult::Continue;
        }
        let flow = tokens::from_html5ever(token, |t| b.token(t));
        tokens::html5ever_result(flow)
    }
}

/// One open element: its name (interned when known) and the attributes
/// the plan reads.
struct Open {
    name: Cow<'static, str>,
    /// The name's index in [`KNOWN`] ([`OTHER`] when it is not there).
    k: u16,
    /// The name's `F_*` flags.
    f: u16,
    attrs: Vec<(Arc<str>, Box<str>)>,
    /// The bits of its id and classes in the plan's [`Numbering`].
    bits: (u64, u64),
    id: u64,
}

impl El for Open {
    fn name(&self) -> &str {
        &self.name
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| &*a.0 == name).map(|a| &*a.1)
    }
    fn known(&self) -> Option<u16> {
        Some(self.k)
    }
    fn bits(&self) -> Option<(u64, u64)> {
        Some(self.bits)
    }
}

/// Candidates of one selector in one scope, in document order: `None`
/// while the element's text is still being read.
#[derive(Default)]
struct Pick {
    all: bool,
    matched: bool,
    /// One candidate inline: a column or single field rarely has more.
    vals: SmallVec<[Option<String>; 1]>,
    head: usize,
    done: bool,
}

impl Pick {
    fn set(&mut self, i: usize, v: String) {
        self.vals[i] = Some(v);
        if !self.all {
            while let Some(Some(v)) = self.vals.get(self.head) {
                if !v.is_empty() {
                    self.done = true;
                    break;
                }
                self.head += 1;
            }
        }
    }

    fn result(self) -> Read {
        if self.all {
            let list: Vec<String> = self
                .vals
                .into_iter()
                .flatten()
                .filter(|v| !v.is_empty())
                .collect();
            (
                (!list.is_empty()).then_some(FieldValue::List(list)),
                self.matched,
            )
        } else {
            let v = if self.done {
                self.vals.into_iter().nth(self.head).flatten()
            } else {
                None
            };
            (v.map(FieldValue::Text), self.matched)
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Field(usize),
    Column(usize, usize),
    Next,
}

/// The text of a matched element being read.
struct Capture {
    depth: usize,
    buf: String,
    slot: Slot,
    cand: usize,
}

struct Row {
    depth: usize,
    open: bool,
    cols: Vec<Pick>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    BeforeHtml,
    BeforeHead,
    InHead,
    AfterHead,
    Body,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Body,
    Table,
    TableBody,
    Row,
    Cell,
}

/// An entry of the list of active formatting elements.
#[derive(Clone)]
enum Fmt {
    Marker,
    El {
        id: u64,
        name: Cow<'static, str>,
        on_stack: bool,
    },
}

struct Builder<'a> {
    plan: &'a Plan,
    spec: &'a HtmlSpec,
    base: &'a Url,
    lim: &'a HtmlLimits,
    stack: Vec<Open>,
    phase: Phase,
    /// `Some(true)` quirks, `Some(false)` no quirks, `None` not known
    /// (limited quirks or an unusual doctype).
    quirks: Option<bool>,
    seen_doctype_or_content: bool,
    /// The current node is a raw-text element (script, style, …).
    text_mode: bool,
    ignore_lf: bool,
    form: Option<u64>,
    fmt: Vec<Fmt>,
    next_id: u64,
    elements: usize,
    fields: Vec<Pick>,
    next: Pick,
    rows: Vec<Row>,
    open_rows: Vec<usize>,
    captures: Vec<Capture>,
    /// Buffers of finished captures, for the next ones.
    spare: Vec<String>,
    fallback: Option<&'static str>,
    error: Option<ExtractError>,
}

const SCOPE: &[&str] = &[
    "applet", "caption", "html", "table", "td", "th", "marquee", "object", "template",
];

fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' ')
}

fn special(n: &str) -> bool {
    matches!(
        n,
        "address"
            | "applet"
            | "area"
            | "article"
            | "aside"
            | "base"
            | "basefont"
            | "bgsound"
            | "blockquote"
            | "body"
            | "br"
            | "button"
            | "caption"
            | "center"
            | "col"
            | "colgroup"
            | "dd"
            | "details"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "embed"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "frame"
            | "frameset"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "head"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "iframe"
            | "img"
            | "input"
            | "keygen"
            | "li"
            | "link"
            | "listing"
            | "main"
            | "marquee"
            | "menu"
            | "meta"
            | "nav"
            | "noembed"
            | "noframes"
            | "noscript"
            | "object"
            | "ol"
            | "p"
            | "param"
            | "plaintext"
            | "pre"
            | "script"
            | "search"
            | "section"
            | "select"
            | "source"
            | "style"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "template"
            | "textarea"
            | "tfoot"
            | "th"
            | "thead"
            | "title"
            | "tr"
            | "track"
            | "ul"
            | "wbr"
            | "xmp"
    )
}

/// The elements whose text `element_text` surrounds with spaces.
fn block(n: &str) -> bool {
    super::reading::is_block(n)
}

/// The elements whose content `element_text` skips.
fn hidden(n: &str) -> bool {
    matches!(n, "script" | "style" | "template" | "noscript")
}

fn heading(n: &str) -> bool {
    matches!(n, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

fn formatting(n: &str) -> bool {
    matches!(
        n,
        "a" | "b"
            | "big"
            | "code"
            | "em"
            | "font"
            | "i"
            | "nobr"
            | "s"
            | "small"
            | "strike"
            | "strong"
            | "tt"
            | "u"
    )
}

fn implied_end(n: &str) -> bool {
    matches!(
        n,
        "dd" | "dt" | "li" | "optgroup" | "option" | "p" | "rb" | "rp" | "rt" | "rtc"
    )
}

/// The names the builder and real pages use, sorted: an element's
/// name is kept as one of these when it is one.
const KNOWN: &[&str] = &[
    "a",
    "abbr",
    "address",
    "applet",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "basefont",
    "bdi",
    "bdo",
    "bgsound",
    "big",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "image",
    "img",
    "input",
    "ins",
    "kbd",
    "keygen",
    "label",
    "legend",
    "li",
    "link",
    "listing",
    "main",
    "map",
    "mark",
    "marquee",
    "math",
    "menu",
    "meta",
    "meter",
    "nav",
    "nobr",
    "noembed",
    "noframes",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "param",
    "picture",
    "plaintext",
    "pre",
    "progress",
    "q",
    "rb",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "samp",
    "script",
    "search",
    "section",
    "select",
    "slot",
    "small",
    "source",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "tt",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
    "xmp",
];

/// The index of a name not in [`KNOWN`].
const OTHER: u16 = u16::MAX;

// What the tree builder's rules ask of an element's name, computed once
// per name from the lists below (the lists stay the one definition).
const F_BLOCK: u16 = 1;
const F_SPECIAL: u16 = 1 << 1;
const F_FORMATTING: u16 = 1 << 2;
const F_HIDDEN: u16 = 1 << 3;
const F_SCOPE: u16 = 1 << 4;
const F_IMPLIED: u16 = 1 << 5;
const F_CELL: u16 = 1 << 6;
const F_ROW: u16 = 1 << 7;
const F_TBODY: u16 = 1 << 8;
const F_TABLE: u16 = 1 << 9;
const F_BODY_HTML: u16 = 1 << 10;
const F_TABLE_SCOPE: u16 = 1 << 11;
const F_BUTTON: u16 = 1 << 12;

fn flags_of(n: &str) -> u16 {
    let mut f = 0;
    for (yes, bit) in [
        (block(n), F_BLOCK),
        (special(n), F_SPECIAL),
        (formatting(n), F_FORMATTING),
        (hidden(n), F_HIDDEN),
        (SCOPE.contains(&n), F_SCOPE),
        (implied_end(n), F_IMPLIED),
        (matches!(n, "td" | "th"), F_CELL),
        (n == "tr", F_ROW),
        (matches!(n, "tbody" | "thead" | "tfoot"), F_TBODY),
        (n == "table", F_TABLE),
        (matches!(n, "body" | "html"), F_BODY_HTML),
        (matches!(n, "html" | "table" | "template"), F_TABLE_SCOPE),
        (n == "button", F_BUTTON),
    ] {
        if yes {
            f |= bit;
        }
    }
    f
}

/// A name of at most 16 bytes as one integer (names hold no NUL).
fn pack(n: &[u8]) -> Option<u128> {
    if n.is_empty() || n.len() > 16 {
        return None;
    }
    let mut b = [0u8; 16];
    b[..n.len()].copy_from_slice(n);
    Some(u128::from_le_bytes(b))
}

struct Known {
    /// Packed names, sorted, with their index in [`KNOWN`].
    keys: Vec<(u128, u16)>,
    flags: Vec<u16>,
}

fn known() -> &'static Known {
    static K: std::sync::OnceLock<Known> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let mut keys: Vec<(u128, u16)> = KNOWN
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((pack(n.as_bytes())?, i as u16)))
            .collect();
        keys.sort_unstable();
        Known {
            keys,
            flags: KNOWN.iter().map(|n| flags_of(n)).collect(),
        }
    })
}

/// A name's index in [`KNOWN`], or [`OTHER`].
fn known_id(name: &str) -> u16 {
    let Some(p) = pack(name.as_bytes()) else {
        return OTHER;
    };
    let k = known();
    match k.keys.binary_search_by_key(&p, |e| e.0) {
        Ok(i) => k.keys[i].1,
        Err(_) => OTHER,
    }
}

/// A name as kept on the stack: interned, its index and its flags.
fn intern(name: &str) -> (Cow<'static, str>, u16, u16) {
    match known_id(name) {
        OTHER => (Cow::Owned(name.to_string()), OTHER, flags_of(name)),
        k => (
            Cow::Borrowed(KNOWN[k as usize]),
            k,
            known().flags[k as usize],
        ),
    }
}

impl Open {
    fn is(&self, name: &str, k: u16) -> bool {
        if k == OTHER {
            &*self.name == name
        } else {
            self.k == k
        }
    }
}

fn tag(name: &'static str) -> Tag<'static> {
    Tag::start(name)
}

type Res = Flow;
const GO: Res = Flow::Go;

impl<'a> Builder<'a> {
    fn new(plan: &'a Plan, spec: &'a HtmlSpec, base: &'a Url, lim: &'a HtmlLimits) -> Self {
        let fields = spec
            .fields
            .iter()
            .map(|(_, f)| Pick {
                all: f.all,
                ..Pick::default()
            })
            .collect();
        Builder {
            plan,
            spec,
            base,
            lim,
            stack: Vec::new(),
            phase: Phase::BeforeHtml,
            quirks: None,
            seen_doctype_or_content: false,
            text_mode: false,
            ignore_lf: false,
            form: None,
            fmt: Vec::new(),
            next_id: 0,
            elements: 0,
            fields,
            next: Pick::default(),
            rows: Vec::new(),
            open_rows: Vec::new(),
            captures: Vec::new(),
            spare: Vec::new(),
            fallback: None,
            error: None,
        }
    }

    fn bail(&mut self, why: &'static str) -> Res {
        if self.fallback.is_none() {
            self.fallback = Some(why);
        }
        GO
    }

    fn cur(&self) -> &str {
        self.stack.last().map(|e| &*e.name).unwrap_or("")
    }

    fn token(&mut self, token: Tok<'_>) -> Res {
        let ignore_lf = std::mem::take(&mut self.ignore_lf);
        match token {
            Tok::Error => GO,
            Tok::Doctype(d) => {
                if !self.seen_doctype_or_content {
                    self.seen_doctype_or_content = true;
                    let html = d.name.as_deref() == Some("html");
                    let legacy = match d.system_id.as_deref() {
                        None => true,
                        Some(s) => s == "about:legacy-compat",
                    };
                    self.quirks = if d.force_quirks || !html {
                        Some(true)
                    } else if d.public_id.is_none() && legacy {
                        Some(false)
                    } else {
                        None
                    };
                }
                GO
            }
            Tok::Comment(_) => GO,
            Tok::Null => {
                if self.text_mode {
                    // The tokenizer turns NUL into U+FFFD in raw text.
                    return GO;
                }
                if self.phase != Phase::Body {
                    return self.bail("NUL before the body");
                }
                GO
            }
            Tok::Eof => {
                self.first_content();
                // The tree builder creates what is missing up to `body`.
                if self.phase == Phase::BeforeHtml {
                    self.insert(tag("html"));
                    self.phase = Phase::BeforeHead;
                }
                if self.phase == Phase::BeforeHead {
                    self.insert(tag("head"));
                    self.phase = Phase::InHead;
                }
                if self.phase == Phase::InHead {
                    self.pop();
                    self.phase = Phase::AfterHead;
                }
                if self.phase == Phase::AfterHead {
                    self.insert(tag("body"));
                    self.phase = Phase::Body;
                }
                while !self.stack.is_empty() {
                    self.pop();
                }
                GO
            }
            Tok::Text(t) => {
                let t = if ignore_lf {
                    t.strip_prefix('\n').unwrap_or(t)
                } else {
                    t
                };
                if t.is_empty() {
                    return GO;
                }
                if self.text_mode {
                    self.text(t);
                    return GO;
                }
                self.chars(t)
            }
            Tok::Tag(t) => {
                if self.text_mode {
                    if t.end {
                        self.text_mode = false;
                        self.pop();
                    }
                    return GO;
                }
                self.first_content();
                if t.end { self.end(t) } else { self.start(t) }
            }
        }
    }

    /// Content before any doctype puts the document in quirks mode.
    fn first_content(&mut self) {
        if !self.seen_doctype_or_content {
            self.seen_doctype_or_content = true;
            self.quirks = Some(true);
        }
    }

    fn chars(&mut self, t: &str) -> Res {
        let mut t = t;
        loop {
            match self.phase {
                Phase::BeforeHtml | Phase::BeforeHead => {
                    t = t.trim_start_matches(is_ws);
                    if t.is_empty() {
                        return GO;
                    }
                    self.first_content();
                    if self.phase == Phase::BeforeHtml {
                        self.insert(tag("html"));
                        self.phase = Phase::BeforeHead;
                    }
                    self.insert(tag("head"));
                    self.phase = Phase::InHead;
                }
                Phase::InHead | Phase::AfterHead => {
                    let rest = t.trim_start_matches(is_ws);
                    let ws = &t[..t.len() - rest.len()];
                    if !ws.is_empty() {
                        self.text(ws);
                    }
                    if rest.is_empty() {
                        return GO;
                    }
                    t = rest;
                    if self.phase == Phase::InHead {
                        self.pop();
                        self.phase = Phase::AfterHead;
                    }
                    self.insert(tag("body"));
                    self.phase = Phase::Body;
                }
                Phase::Body => {
                    if matches!(self.mode(), Mode::Table | Mode::TableBody | Mode::Row)
                        && matches!(self.cur(), "table" | "tbody" | "tfoot" | "thead" | "tr")
                    {
                        if t.chars().all(is_ws) {
                            self.text(t);
                            return GO;
                        }
                        return self.bail("text in a table (foster parenting)");
                    }
                    if !self.reconstruct() {
                        return GO;
                    }
                    self.text(t);
                    return GO;
                }
            }
        }
    }

    /// The insertion mode the stack implies (html5ever's reset).
    fn mode(&self) -> Mode {
        const ANY: u16 = F_CELL | F_ROW | F_TBODY | F_TABLE | F_BODY_HTML;
        for e in self.stack.iter().rev() {
            if e.f & ANY == 0 {
                continue;
            }
            return if e.f & F_CELL != 0 {
                Mode::Cell
            } else if e.f & F_ROW != 0 {
                Mode::Row
            } else if e.f & F_TBODY != 0 {
                Mode::TableBody
            } else if e.f & F_TABLE != 0 {
                Mode::Table
            } else {
                Mode::Body
            };
        }
        Mode::Body
    }

    fn in_scope_with(&self, target: &dyn Fn(&str) -> bool, extra: &[&str]) -> bool {
        for e in self.stack.iter().rev() {
            if target(&e.name) {
                return true;
            }
            if e.f & F_SCOPE != 0 || extra.contains(&&*e.name) {
                return false;
            }
        }
        false
    }

    /// Whether an element named `name` is open above the first element
    /// with one of the `stop` flags.
    fn scope_hit(&self, name: &str, stop: u16) -> bool {
        let k = known_id(name);
        for e in self.stack.iter().rev() {
            if e.is(name, k) {
                return true;
            }
            if e.f & stop != 0 {
                return false;
            }
        }
        false
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scope_hit(name, F_SCOPE)
    }

    fn in_button_scope(&self, name: &str) -> bool {
        self.scope_hit(name, F_SCOPE | F_BUTTON)
    }

    fn in_table_scope(&self, name: &str) -> bool {
        self.scope_hit(name, F_TABLE_SCOPE)
    }

    fn generate_implied(&mut self, except: &str) {
        while let Some(e) = self.stack.last() {
            if e.f & F_IMPLIED == 0 || &*e.name == except {
                break;
            }
            self.pop();
        }
    }

    fn pop_until(&mut self, pred: &dyn Fn(&str) -> bool) {
        while let Some(e) = self.stack.last() {
            let hit = pred(&e.name);
            self.pop();
            if hit {
                break;
            }
        }
    }

    fn close_p(&mut self) {
        if self.in_button_scope("p") {
            self.generate_implied("p");
            self.pop_until(&|n| n == "p");
        }
    }

    /// Reconstructs the active formatting elements: `false` (and a
    /// fallback) when there is anything to reconstruct.
    fn reconstruct(&mut self) -> bool {
        match self.fmt.last() {
            Some(Fmt::El {
                on_stack: false, ..
            }) => {
                let _ = self.bail("formatting elements to reconstruct");
                false
            }
            _ => true,
        }
    }

    fn clear_fmt_to_marker(&mut self) {
        while let Some(f) = self.fmt.pop() {
            if matches!(f, Fmt::Marker) {
                break;
            }
        }
    }

    fn push_fmt(&mut self) {
        let Some(e) = self.stack.last() else { return };
        let same = self
            .fmt
            .iter()
            .rev()
            .take_while(|f| !matches!(f, Fmt::Marker))
            .filter(|f| matches!(f, Fmt::El { name, .. } if *name == e.name))
            .count();
        if same >= 3 {
            let _ = self.bail("three identical formatting elements (Noah's Ark)");
            return;
        }
        self.fmt.push(Fmt::El {
            id: e.id,
            name: e.name.clone(),
            on_stack: true,
        });
    }

    fn fmt_after_marker(&self, name: &str) -> Option<usize> {
        for (i, f) in self.fmt.iter().enumerate().rev() {
            match f {
                Fmt::Marker => return None,
                Fmt::El { name: n, .. } if &**n == name => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// Inserts an element as a child of the current node and opens it.
    fn insert(&mut self, t: Tag<'_>) {
        self.elements += 1;
        let id = self.next_id;
        self.next_id += 1;
        let depth = self.stack.len();
        let (name, k, f) = intern(&t.name);
        if f & F_BLOCK != 0 {
            for c in &mut self.captures {
                c.buf.push(' ');
            }
        }
        let plan = self.plan;
        let mut attrs = Vec::new();
        let mut bits = (0, 0);
        for a in t.attrs.iter() {
            match &*a.name {
                "id" if !plan.names.ids.is_empty() => {
                    bits.0 = Numbering::bits_of(&plan.names.ids, std::iter::once(&*a.value));
                }
                "class" if !plan.names.classes.is_empty() => {
                    bits.1 =
                        Numbering::bits_of(&plan.names.classes, a.value.split_ascii_whitespace());
                }
                _ => {}
            }
            if let Some(w) = plan.attrs.iter().find(|w| ***w == *a.name) {
                attrs.push((w.clone(), Box::from(&*a.value)));
            }
        }
        self.stack.push(Open {
            name,
            k,
            f,
            attrs,
            bits,
            id,
        });
        if self.stack.len() > self.lim.max_tree_depth {
            self.error = Some(limits::too_deep_tree(self.lim));
            return;
        }
        self.matches(depth);
    }

    fn insert_void(&mut self, t: Tag<'_>) {
        self.insert(t);
        self.pop();
    }

    fn insert_raw(&mut self, t: Tag<'_>, kind: Flow) -> Res {
        self.insert(t);
        self.text_mode = true;
        kind
    }

    fn matches(&mut self, depth: usize) {
        let plan = self.plan;
        let spec = self.spec;
        for (i, sel) in plan.fields.iter().enumerate() {
            if self.fields[i].done {
                continue;
            }
            if sel.matches(&self.stack) {
                let attr = spec.fields[i].1.attr.as_deref();
                self.candidate(Slot::Field(i), attr, depth);
            }
        }
        if let Some(sel) = &plan.next
            && !self.next.done
            && sel.matches(&self.stack)
        {
            let attr = spec.next_page.as_ref().and_then(|f| f.attr.as_deref());
            self.candidate(Slot::Next, attr, depth);
        }
        if let (Some(sel), Some(items)) = (&plan.row, &spec.items)
            && sel.matches(&self.stack)
        {
            self.rows.push(Row {
                depth,
                open: true,
                cols: (0..plan.columns.len()).map(|_| Pick::default()).collect(),
            });
            self.open_rows.push(self.rows.len() - 1);
            let _ = items;
        }
        if let Some(items) = &spec.items {
            for ri in 0..self.open_rows.len() {
                let r = self.open_rows[ri];
                for (ci, sel) in plan.columns.iter().enumerate() {
                    if self.rows[r].cols[ci].done {
                        continue;
                    }
                    if sel.matches(&self.stack) {
                        let attr = items.columns[ci].1.attr.as_deref();
                        self.candidate(Slot::Column(r, ci), attr, depth);
                    }
                }
            }
        }
    }

    fn pick(&mut self, slot: Slot) -> &mut Pick {
        match slot {
            Slot::Field(i) => &mut self.fields[i],
            Slot::Next => &mut self.next,
            Slot::Column(r, c) => &mut self.rows[r].cols[c],
        }
    }

    fn candidate(&mut self, slot: Slot, attr: Option<&str>, depth: usize) {
        let value = attr.map(|a| {
            let Some(e) = self.stack.last() else {
                return String::new();
            };
            match e.attr(a) {
                None => String::new(),
                Some(v) => {
                    let raw = clean_text(v);
                    if matches!(a, "href" | "src" | "action") && !raw.is_empty() {
                        self.base.join(&raw).map(|u| u.to_string()).unwrap_or(raw)
                    } else {
                        raw
                    }
                }
            }
        });
        let p = self.pick(slot);
        p.matched = true;
        p.vals.push(None);
        let cand = p.vals.len() - 1;
        match value {
            Some(v) => p.set(cand, v),
            None => {
                let buf = self.spare.pop().unwrap_or_default();
                self.captures.push(Capture {
                    depth,
                    buf,
                    slot,
                    cand,
                })
            }
        }
    }

    fn text(&mut self, t: &str) {
        let top = self.stack.len().saturating_sub(1);
        let hide = self.stack.last().is_some_and(|e| e.f & F_HIDDEN != 0);
        for c in &mut self.captures {
            if hide && c.depth < top {
                continue;
            }
            c.buf.push_str(t);
        }
    }

    fn pop(&mut self) {
        let Some(e) = self.stack.pop() else { return };
        let depth = self.stack.len();
        while self.captures.last().is_some_and(|c| c.depth == depth) {
            if let Some(mut c) = self.captures.pop() {
                let v = clean_text(&c.buf);
                self.pick(c.slot).set(c.cand, v);
                c.buf.clear();
                self.spare.push(c.buf);
            }
        }
        while let Some(&r) = self.open_rows.last() {
            if self.rows[r].depth == depth {
                self.rows[r].open = false;
                self.open_rows.pop();
            } else {
                break;
            }
        }
        if e.f & F_BLOCK != 0 {
            for c in &mut self.captures {
                c.buf.push(' ');
            }
        }
        if e.f & F_FORMATTING != 0 {
            for f in self.fmt.iter_mut().rev() {
                if let Fmt::El { id, on_stack, .. } = f
                    && *id == e.id
                {
                    *on_stack = false;
                    break;
                }
            }
        }
    }

    fn start(&mut self, mut t: Tag<'_>) -> Res {
        loop {
            match self.phase {
                Phase::BeforeHtml => {
                    if &*t.name == "html" {
                        self.insert(t);
                        self.phase = Phase::BeforeHead;
                        return GO;
                    }
                    self.insert(tag("html"));
                    self.phase = Phase::BeforeHead;
                }
                Phase::BeforeHead => match &*t.name {
                    "html" => return self.html_attrs(&t),
                    "head" => {
                        self.insert(t);
                        self.phase = Phase::InHead;
                        return GO;
                    }
                    _ => {
                        self.insert(tag("head"));
                        self.phase = Phase::InHead;
                    }
                },
                Phase::InHead => match &*t.name {
                    "html" => return self.html_attrs(&t),
                    "head" => return GO,
                    "template" => return self.bail("template"),
                    "base" | "basefont" | "bgsound" | "link" | "meta" | "title" | "noscript"
                    | "noframes" | "style" | "script" => return self.head_element(t),
                    _ => {
                        self.pop();
                        self.phase = Phase::AfterHead;
                    }
                },
                Phase::AfterHead => match &*t.name {
                    "html" => return self.html_attrs(&t),
                    "body" => {
                        self.insert(t);
                        self.phase = Phase::Body;
                        return GO;
                    }
                    "frameset" => return self.bail("frameset"),
                    "base" | "basefont" | "bgsound" | "link" | "meta" | "noframes" | "script"
                    | "style" | "template" | "title" => {
                        return self.bail("head content after </head>");
                    }
                    "head" => return GO,
                    _ => {
                        self.insert(tag("body"));
                        self.phase = Phase::Body;
                    }
                },
                Phase::Body => {
                    if &*t.name == "image" {
                        t.name = Cow::Borrowed("img");
                    }
                    return match self.mode() {
                        Mode::Body => self.start_body(t),
                        Mode::Cell => self.start_cell(t),
                        Mode::Row => self.start_row(t),
                        Mode::TableBody => self.start_table_body(t),
                        Mode::Table => self.start_table(t),
                    };
                }
            }
        }
    }

    fn html_attrs(&mut self, t: &Tag<'_>) -> Res {
        if t.attrs.is_empty() {
            GO
        } else {
            self.bail("attributes merged into <html>")
        }
    }

    /// The "in head" rules for the elements that may also appear in the
    /// body (inserted into the current node).
    fn head_element(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "title" => self.insert_raw(t, Flow::Rcdata),
            "noscript" | "noframes" | "style" => self.insert_raw(t, Flow::Rawtext),
            "script" => self.insert_raw(t, Flow::Script),
            "template" => self.bail("template"),
            _ => {
                self.insert_void(t);
                GO
            }
        }
    }

    fn start_body(&mut self, t: Tag<'_>) -> Res {
        let name = t.name.clone();
        match &*name {
            "html" => self.html_attrs(&t),
            "base" | "basefont" | "bgsound" | "link" | "meta" | "noframes" | "script" | "style"
            | "template" | "title" => self.head_element(t),
            "body" => {
                if t.attrs.is_empty() {
                    GO
                } else {
                    self.bail("attributes merged into <body>")
                }
            }
            "frameset" => self.bail("frameset"),
            "address" | "article" | "aside" | "blockquote" | "center" | "details" | "dialog"
            | "dir" | "div" | "dl" | "fieldset" | "figcaption" | "figure" | "footer" | "header"
            | "hgroup" | "main" | "menu" | "nav" | "ol" | "p" | "search" | "section"
            | "summary" | "ul" => {
                self.close_p();
                self.insert(t);
                GO
            }
            n if heading(n) => {
                self.close_p();
                if heading(self.cur()) {
                    self.pop();
                }
                self.insert(t);
                GO
            }
            "pre" | "listing" => {
                self.close_p();
                self.insert(t);
                self.ignore_lf = true;
                GO
            }
            "form" => {
                if self.form.is_some() {
                    return GO;
                }
                self.close_p();
                self.insert(t);
                self.form = self.stack.last().map(|e| e.id);
                GO
            }
            "li" | "dd" | "dt" => {
                let stops: &[&str] = if &*name == "li" {
                    &["li"]
                } else {
                    &["dd", "dt"]
                };
                for i in (0..self.stack.len()).rev() {
                    let n = &*self.stack[i].name;
                    if stops.contains(&n) {
                        let n = n.to_string();
                        self.generate_implied(&n);
                        self.pop_until(&|x| x == n);
                        break;
                    }
                    if self.stack[i].f & F_SPECIAL != 0 && !matches!(n, "address" | "div" | "p") {
                        break;
                    }
                }
                self.close_p();
                self.insert(t);
                GO
            }
            "plaintext" => self.bail("plaintext"),
            "button" => {
                if self.in_scope("button") {
                    self.generate_implied("");
                    self.pop_until(&|x| x == "button");
                }
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                GO
            }
            "a" => {
                if self.fmt_after_marker("a").is_some() {
                    return self.bail("nested <a> (adoption agency)");
                }
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                self.push_fmt();
                GO
            }
            "b" | "big" | "code" | "em" | "font" | "i" | "s" | "small" | "strike" | "strong"
            | "tt" | "u" => {
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                self.push_fmt();
                GO
            }
            "nobr" => {
                if !self.reconstruct() {
                    return GO;
                }
                if self.in_scope("nobr") {
                    return self.bail("nested <nobr>");
                }
                self.insert(t);
                self.push_fmt();
                GO
            }
            "applet" | "marquee" | "object" => {
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                self.fmt.push(Fmt::Marker);
                GO
            }
            "table" => {
                match self.quirks {
                    Some(false) => self.close_p(),
                    Some(true) => {}
                    None => {
                        if self.in_button_scope("p") {
                            return self.bail("<table> in <p> with an unusual doctype");
                        }
                    }
                }
                self.insert(t);
                GO
            }
            "area" | "br" | "embed" | "img" | "keygen" | "wbr" | "input" => {
                if !self.reconstruct() {
                    return GO;
                }
                self.insert_void(t);
                GO
            }
            "param" | "source" | "track" => {
                self.insert_void(t);
                GO
            }
            "hr" => {
                self.close_p();
                self.insert_void(t);
                GO
            }
            "textarea" => {
                self.ignore_lf = true;
                self.insert_raw(t, Flow::Rcdata)
            }
            "xmp" => {
                self.close_p();
                if !self.reconstruct() {
                    return GO;
                }
                self.insert_raw(t, Flow::Rawtext)
            }
            "iframe" | "noembed" | "noscript" => self.insert_raw(t, Flow::Rawtext),
            "select" => self.bail("select"),
            "optgroup" | "option" => {
                if self.cur() == "option" {
                    self.pop();
                }
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                GO
            }
            "rb" | "rtc" | "rp" | "rt" => self.bail("ruby"),
            "math" | "svg" => self.bail("foreign content"),
            "caption" | "col" | "colgroup" | "frame" | "head" | "tbody" | "td" | "tfoot" | "th"
            | "thead" | "tr" => GO,
            _ => {
                if !self.reconstruct() {
                    return GO;
                }
                self.insert(t);
                GO
            }
        }
    }

    fn start_table(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "caption" | "colgroup" | "col" => self.bail("caption or column group"),
            "tbody" | "tfoot" | "thead" => {
                self.clear_to(&["table", "template", "html"]);
                self.insert(t);
                GO
            }
            "td" | "th" | "tr" => {
                self.clear_to(&["table", "template", "html"]);
                self.insert(tag("tbody"));
                self.start(t)
            }
            "table" => {
                if !self.in_table_scope("table") {
                    return GO;
                }
                self.pop_until(&|n| n == "table");
                self.start(t)
            }
            "style" | "script" | "template" => self.head_element(t),
            "input" => {
                let hidden = t
                    .attr("type")
                    .is_some_and(|v| v.eq_ignore_ascii_case("hidden"));
                if hidden {
                    self.insert_void(t);
                    GO
                } else {
                    self.bail("input in a table (foster parenting)")
                }
            }
            _ => self.bail("element in a table (foster parenting)"),
        }
    }

    fn clear_to(&mut self, names: &[&str]) {
        while !self.stack.is_empty() && !names.contains(&self.cur()) {
            self.pop();
        }
    }

    fn start_table_body(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "tr" => {
                self.clear_to(&["tbody", "tfoot", "thead", "template", "html"]);
                self.insert(t);
                GO
            }
            "th" | "td" => {
                self.clear_to(&["tbody", "tfoot", "thead", "template", "html"]);
                self.insert(tag("tr"));
                self.start(t)
            }
            "caption" | "col" | "colgroup" | "tbody" | "tfoot" | "thead" => {
                if !(self.in_table_scope("tbody")
                    || self.in_table_scope("thead")
                    || self.in_table_scope("tfoot"))
                {
                    return GO;
                }
                self.clear_to(&["tbody", "tfoot", "thead", "template", "html"]);
                self.pop();
                self.start(t)
            }
            _ => self.start_table(t),
        }
    }

    fn start_row(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "th" | "td" => {
                self.clear_to(&["tr", "template", "html"]);
                self.insert(t);
                self.fmt.push(Fmt::Marker);
                GO
            }
            "caption" | "col" | "colgroup" | "tbody" | "tfoot" | "thead" | "tr" => {
                if !self.in_table_scope("tr") {
                    return GO;
                }
                self.clear_to(&["tr", "template", "html"]);
                self.pop();
                self.start(t)
            }
            _ => self.start_table(t),
        }
    }

    fn start_cell(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "caption" | "col" | "colgroup" | "tbody" | "td" | "tfoot" | "th" | "thead" | "tr" => {
                if !(self.in_table_scope("td") || self.in_table_scope("th")) {
                    return GO;
                }
                self.close_cell();
                self.start(t)
            }
            _ => self.start_body(t),
        }
    }

    fn close_cell(&mut self) {
        self.generate_implied("");
        self.pop_until(&|n| matches!(n, "td" | "th"));
        self.clear_fmt_to_marker();
    }

    fn end(&mut self, t: Tag<'_>) -> Res {
        match self.phase {
            Phase::BeforeHtml => {
                if !matches!(&*t.name, "head" | "body" | "html" | "br") {
                    return GO;
                }
                self.insert(tag("html"));
                self.phase = Phase::BeforeHead;
                self.end(t)
            }
            Phase::BeforeHead => {
                if !matches!(&*t.name, "head" | "body" | "html" | "br") {
                    return GO;
                }
                self.insert(tag("head"));
                self.phase = Phase::InHead;
                self.end(t)
            }
            Phase::InHead => match &*t.name {
                "head" => {
                    self.pop();
                    self.phase = Phase::AfterHead;
                    GO
                }
                "body" | "html" | "br" => {
                    self.pop();
                    self.phase = Phase::AfterHead;
                    self.end(t)
                }
                _ => GO,
            },
            Phase::AfterHead => match &*t.name {
                "body" | "html" | "br" => {
                    self.insert(tag("body"));
                    self.phase = Phase::Body;
                    self.end(t)
                }
                _ => GO,
            },
            Phase::Body => match self.mode() {
                Mode::Body => self.end_body(t),
                Mode::Cell => self.end_cell(t),
                Mode::Row => self.end_row(t),
                Mode::TableBody => self.end_table_body(t),
                Mode::Table => self.end_table(t),
            },
        }
    }

    fn end_body(&mut self, t: Tag<'_>) -> Res {
        let name = t.name.clone();
        let n = &*name;
        match n {
            "template" | "body" | "html" => GO,
            "address" | "article" | "aside" | "blockquote" | "button" | "center" | "details"
            | "dialog" | "dir" | "div" | "dl" | "fieldset" | "figcaption" | "figure" | "footer"
            | "header" | "hgroup" | "listing" | "main" | "menu" | "nav" | "ol" | "pre"
            | "search" | "section" | "summary" | "ul" => {
                if self.in_scope(n) {
                    self.generate_implied("");
                    self.pop_until(&|x| x == n);
                }
                GO
            }
            "form" => {
                let Some(id) = self.form.take() else {
                    return GO;
                };
                let in_scope = self.in_scope_with_id(id);
                if !in_scope {
                    return GO;
                }
                self.generate_implied("");
                if self.stack.last().map(|e| e.id) != Some(id) {
                    return self.bail("</form> not at the current node");
                }
                self.pop();
                GO
            }
            "p" => {
                if !self.in_button_scope("p") {
                    self.insert(tag("p"));
                }
                self.close_p();
                GO
            }
            "li" => {
                if self.in_scope_with(&|x| x == "li", &["ol", "ul"]) {
                    self.generate_implied("li");
                    self.pop_until(&|x| x == "li");
                }
                GO
            }
            "dd" | "dt" => {
                if self.in_scope(n) {
                    self.generate_implied(n);
                    self.pop_until(&|x| x == n);
                }
                GO
            }
            n if heading(n) => {
                if self.in_scope_with(&heading, &[]) {
                    self.generate_implied("");
                    self.pop_until(&heading);
                }
                GO
            }
            n if formatting(n) => self.adoption(n),
            "applet" | "marquee" | "object" => {
                if self.in_scope(n) {
                    self.generate_implied("");
                    self.pop_until(&|x| x == n);
                    self.clear_fmt_to_marker();
                }
                GO
            }
            "br" => {
                if !self.reconstruct() {
                    return GO;
                }
                self.insert_void(tag("br"));
                GO
            }
            _ => {
                self.any_other_end(n);
                GO
            }
        }
    }

    fn in_scope_with_id(&self, id: u64) -> bool {
        for e in self.stack.iter().rev() {
            if e.id == id {
                return true;
            }
            if e.f & F_SCOPE != 0 {
                return false;
            }
        }
        false
    }

    fn any_other_end(&mut self, n: &str) {
        for i in (0..self.stack.len()).rev() {
            if &*self.stack[i].name == n {
                self.generate_implied(n);
                while self.stack.len() > i {
                    self.pop();
                }
                return;
            }
            if self.stack[i].f & F_SPECIAL != 0 {
                return;
            }
        }
    }

    /// The adoption agency, for the cases without a furthest block.
    fn adoption(&mut self, n: &str) -> Res {
        if let Some(e) = self.stack.last()
            && &*e.name == n
            && !self
                .fmt
                .iter()
                .any(|f| matches!(f, Fmt::El { id, .. } if *id == e.id))
        {
            self.pop();
            return GO;
        }
        let Some(fi) = self.fmt_after_marker(n) else {
            self.any_other_end(n);
            return GO;
        };
        let (id, on_stack) = match &self.fmt[fi] {
            Fmt::El { id, on_stack, .. } => (*id, *on_stack),
            Fmt::Marker => return GO,
        };
        if !on_stack {
            self.fmt.remove(fi);
            return GO;
        }
        if !self.in_scope_with_id(id) {
            return GO;
        }
        let Some(si) = self.stack.iter().rposition(|e| e.id == id) else {
            return GO;
        };
        if self.stack[si + 1..].iter().any(|e| e.f & F_SPECIAL != 0) {
            return self.bail("misnested formatting element (adoption agency)");
        }
        while self.stack.len() > si {
            self.pop();
        }
        if let Some(fi) = self
            .fmt
            .iter()
            .rposition(|f| matches!(f, Fmt::El { id: x, .. } if *x == id))
        {
            self.fmt.remove(fi);
        }
        GO
    }

    fn end_table(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "table" => {
                if self.in_table_scope("table") {
                    self.pop_until(&|n| n == "table");
                }
                GO
            }
            "body" | "caption" | "col" | "colgroup" | "html" | "tbody" | "td" | "tfoot" | "th"
            | "thead" | "tr" | "template" => GO,
            _ => self.bail("end tag in a table (foster parenting)"),
        }
    }

    fn end_table_body(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "tbody" | "tfoot" | "thead" => {
                if self.in_table_scope(&t.name) {
                    self.clear_to(&["tbody", "tfoot", "thead", "template", "html"]);
                    self.pop();
                }
                GO
            }
            "table" => {
                if !(self.in_table_scope("tbody")
                    || self.in_table_scope("thead")
                    || self.in_table_scope("tfoot"))
                {
                    return GO;
                }
                self.clear_to(&["tbody", "tfoot", "thead", "template", "html"]);
                self.pop();
                self.end(t)
            }
            "body" | "caption" | "col" | "colgroup" | "html" | "td" | "th" | "tr" => GO,
            _ => self.end_table(t),
        }
    }

    fn end_row(&mut self, t: Tag<'_>) -> Res {
        match &*t.name {
            "tr" => {
                if self.in_table_scope("tr") {
                    self.clear_to(&["tr", "template", "html"]);
                    self.pop();
                }
                GO
            }
            "table" => {
                if !self.in_table_scope("tr") {
                    return GO;
                }
                self.clear_to(&["tr", "template", "html"]);
                self.pop();
                self.end(t)
            }
            "tbody" | "tfoot" | "thead" => {
                if !self.in_table_scope(&t.name) || !self.in_table_scope("tr") {
                    return GO;
                }
                self.clear_to(&["tr", "template", "html"]);
                self.pop();
                self.end(t)
            }
            "body" | "caption" | "col" | "colgroup" | "html" | "td" | "th" => GO,
            _ => self.end_table(t),
        }
    }

    fn end_cell(&mut self, t: Tag<'_>) -> Res {
        let name = t.name.clone();
        match &*name {
            "td" | "th" => {
                if self.in_table_scope(&name) {
                    self.generate_implied("");
                    self.pop_until(&|x| x == &*name);
                    self.clear_fmt_to_marker();
                }
                GO
            }
            "body" | "caption" | "col" | "colgroup" | "html" => GO,
            "table" | "tbody" | "tfoot" | "thead" | "tr" => {
                if !self.in_table_scope(&name) {
                    return GO;
                }
                self.close_cell();
                self.end(t)
            }
            _ => self.end_body(t),
        }
    }

    /// What the page came to once the tokens are all in.
    fn outcome(self) -> Result<Outcome, ExtractError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(why) = self.fallback {
            return Ok(Outcome::Fallback(why));
        }
        if self.elements > self.lim.max_elements {
            return Err(limits::too_many(self.lim, self.elements));
        }
        Ok(Outcome::Done(self.finish()))
    }

    fn finish(self) -> Raw {
        Raw {
            fields: self.fields.into_iter().map(Pick::result).collect(),
            rows: self
                .rows
                .into_iter()
                .map(|r| r.cols.into_iter().map(Pick::result).collect())
                .collect(),
            next: self.next.result(),
        }
    }
}
