//! A byte-level HTML tokenizer for the streaming extractor: the states
//! of the WHATWG tokenizer that real pages use, giving the same tokens as
//! html5ever's tokenizer (with the same sink feedback) but borrowing
//! names, attribute values and text from the page, jumping over text
//! with `memchr`, and allocating only for what it must rewrite
//! (upper-case names, character references, CR).
//!
//! Handled exactly: data, RCDATA, RAWTEXT, script data without `<!--`,
//! PLAINTEXT; start and end tags with attributes (names lower-cased,
//! the first of duplicates kept, quoted and unquoted values, the
//! self-closing flag, attributes on end tags); comments with their odd
//! shapes (`<!-->`, `<!--->`, `--!>`, unclosed at the end); bogus
//! comments (`<?…>`, `</ …>`, `<!x…>`, CDATA, which html5ever treats as
//! a bogus comment outside foreign content); doctypes with their name,
//! identifiers and force-quirks flag; CR and CRLF as LF; a leading BOM;
//! character references in text and attributes (html5ever's own table
//! of named references, the longest-prefix rule, legacy names without
//! `;`, the attribute rule for `&name=`, numeric references with the
//! spec's replacements). A parse error that html5ever reports between
//! tokens and that could change what follows (`</>`, a bad character
//! reference) is given as [`Tok::Error`], since the tree builder forgets
//! a pending newline after `<pre>` on any token.
//!
//! **Architecture Invariant:** [`tokenize`] either gives the sink the
//! token sequence html5ever's tokenizer would give it (adjacent text
//! merged, parse errors aside), or gives up ([`GiveUp`]) and the caller
//! starts the page again on html5ever. It gives up on NUL bytes, on
//! `<!--` inside script data (the escaped states) and on a BOM where
//! html5ever, fed in [`super::limits::SLICE`]s, would drop one.

use std::borrow::Cow;

use html5ever::data::{C1_REPLACEMENTS, NAMED_ENTITIES};
use memchr::{memchr, memchr2, memmem};

/// Why the tokenizer handed a page back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GiveUp(pub(crate) &'static str);

/// An attribute: name lower-cased, value with references decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr<'t> {
    pub(crate) name: Cow<'t, str>,
    pub(crate) value: Cow<'t, str>,
}

/// A start or end tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag<'t> {
    pub(crate) end: bool,
    pub(crate) name: Cow<'t, str>,
    pub(crate) attrs: Cow<'t, [Attr<'t>]>,
    pub(crate) self_closing: bool,
}

impl<'t> Tag<'t> {
    /// A start tag without attributes (the tree builder's implied ones).
    pub(crate) fn start(name: &'t str) -> Tag<'t> {
        Tag {
            end: false,
            name: Cow::Borrowed(name),
            attrs: Cow::Borrowed(&[]),
            self_closing: false,
        }
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| &*a.value)
    }
}

/// A doctype as html5ever gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Doctype {
    pub(crate) name: Option<String>,
    pub(crate) public_id: Option<String>,
    pub(crate) system_id: Option<String>,
    pub(crate) force_quirks: bool,
}

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'t> {
    Tag(Tag<'t>),
    Text(&'t str),
    Comment(Cow<'t, str>),
    Doctype(Doctype),
    /// A parse error between tokens (only those the tree builder could
    /// notice; see the module doc).
    Error,
    /// A NUL character (html5ever's; this tokenizer gives up instead).
    Null,
    Eof,
}

/// The tokenizer state the sink asks for after a start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Go,
    Rcdata,
    Rawtext,
    Script,
    Plaintext,
    /// The sink has what it needs (or gave up): stop.
    Stop,
}

/// What receives the tokens; `pos` is how far into the page the
/// tokenizer is (for the time bound).
pub(crate) trait Sink {
    fn token(&mut self, tok: Tok<'_>, pos: usize) -> Flow;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Data,
    Rcdata,
    Rawtext,
    Script,
    Plaintext,
}

/// Tokenizes `text` into `sink`, or gives up.
pub(crate) fn tokenize<S: Sink>(text: &str, sink: &mut S) -> Result<(), GiveUp> {
    let b = text.as_bytes();
    if memchr(0, b).is_some() {
        return Err(GiveUp("NUL byte"));
    }
    // html5ever drops a BOM wherever it is fed anew: at the start of
    // every slice, and (the DOM path) after every `</script>`.
    let lead = if text.starts_with('\u{feff}') { 3 } else { 0 };
    if memmem::find(&b[lead..], "\u{feff}".as_bytes()).is_some() {
        return Err(GiveUp("BOM inside the page"));
    }
    let owned;
    let text = if memchr(b'\r', b).is_some() {
        owned = text.replace("\r\n", "\n").replace('\r', "\n");
        &owned[..]
    } else {
        text
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut z = Z {
        s: text,
        b: text.as_bytes(),
        mode: Mode::Data,
        last_start: String::new(),
        attrs: Vec::new(),
        stop: false,
        comment_end: memmem::Finder::new("-->"),
    };
    z.run(sink)
}

struct Z<'a> {
    s: &'a str,
    b: &'a [u8],
    mode: Mode,
    /// The name of the start tag that switched to raw text.
    last_start: String,
    attrs: Vec<Attr<'a>>,
    stop: bool,
    comment_end: memmem::Finder<'static>,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0C' | b' ')
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// What a character reference at `&` came to.
struct Ref {
    /// The decoded characters, `None` for a literal `&`.
    chars: Option<(char, Option<char>)>,
    /// Where reading goes on.
    next: usize,
    error: bool,
}

/// The character reference whose `&` is at `p` (html5ever's
/// `CharRefTokenizer`, with all input available).
fn char_ref(s: &str, p: usize, in_attr: bool) -> Ref {
    let b = s.as_bytes();
    let q = p + 1;
    let literal = |error| Ref {
        chars: None,
        next: q,
        error,
    };
    match b.get(q) {
        Some(c) if c.is_ascii_alphanumeric() => {
            let mut k = q;
            let mut found: Option<((u32, u32), usize)> = None;
            while k < b.len() {
                // Entity names are ASCII; anything else ends the match.
                let c = b[k];
                if !c.is_ascii() {
                    break;
                }
                match NAMED_ENTITIES.get(&s[q..=k]) {
                    Some(&m) => {
                        if m.0 != 0 {
                            found = Some((m, k + 1 - q));
                        }
                        k += 1;
                    }
                    None => break,
                }
            }
            let Some(((c1, c2), len)) = found else {
                // `&name;` of an unknown name is an error before the `&`.
                let mut e = k;
                while e < b.len() && b[e].is_ascii_alphanumeric() {
                    e += 1;
                }
                let bad = b.get(e) == Some(&b';') && e > q;
                return literal(bad);
            };
            let last = b[q + len - 1];
            let after = b.get(q + len).copied();
            if last != b';'
                && in_attr
                && after.is_some_and(|c| c == b'=' || c.is_ascii_alphanumeric())
            {
                return literal(false);
            }
            let ch = |n: u32| char::from_u32(n).unwrap_or('\u{fffd}');
            Ref {
                chars: Some((ch(c1), (c2 != 0).then(|| ch(c2)))),
                next: q + len,
                error: last != b';',
            }
        }
        Some(b'#') => {
            let (base, start) = match b.get(q + 1) {
                Some(b'x' | b'X') => (16, q + 2),
                _ => (10, q + 1),
            };
            let mut k = start;
            let mut num: u32 = 0;
            let mut too_big = false;
            while let Some(d) = b.get(k).and_then(|&c| (c as char).to_digit(base)) {
                num = num.wrapping_mul(base);
                if num > 0x10FFFF {
                    too_big = true;
                }
                num = num.wrapping_add(d);
                k += 1;
            }
            if k == start {
                return literal(true);
            }
            let mut error = false;
            if b.get(k) == Some(&b';') {
                k += 1;
            } else {
                error = true;
            }
            let (c, bad) = match num {
                n if n > 0x10FFFF || too_big => ('\u{fffd}', true),
                0x00 | 0xD800..=0xDFFF => ('\u{fffd}', true),
                0x80..=0x9F => match C1_REPLACEMENTS[(num - 0x80) as usize] {
                    Some(c) => (c, true),
                    None => (char::from_u32(num).unwrap_or('\u{fffd}'), true),
                },
                0x01..=0x08 | 0x0B | 0x0D..=0x1F | 0x7F | 0xFDD0..=0xFDEF => {
                    (char::from_u32(num).unwrap_or('\u{fffd}'), true)
                }
                n if (n & 0xFFFE) == 0xFFFE => (char::from_u32(n).unwrap_or('\u{fffd}'), true),
                n => (char::from_u32(n).unwrap_or('\u{fffd}'), false),
            };
            Ref {
                chars: Some((c, None)),
                next: k,
                error: error || bad,
            }
        }
        _ => literal(false),
    }
}

/// `raw` with its character references decoded (attribute rules).
fn attr_value(raw: &str) -> Cow<'_, str> {
    let Some(mut amp) = memchr(b'&', raw.as_bytes()) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    let mut from = 0;
    loop {
        out.push_str(&raw[from..amp]);
        let r = char_ref(raw, amp, true);
        match r.chars {
            None => out.push('&'),
            Some((a, b)) => {
                out.push(a);
                if let Some(b) = b {
                    out.push(b);
                }
            }
        }
        from = r.next;
        match memchr(b'&', &raw.as_bytes()[from..]) {
            Some(k) => amp = from + k,
            None => {
                out.push_str(&raw[from..]);
                return Cow::Owned(out);
            }
        }
    }
}

/// How a tag ended.
enum TagEnd {
    /// Emitted; reading goes on at the position.
    Emitted(usize),
    /// The page ended inside the tag: the tag is dropped.
    Eof,
}

impl<'a> Z<'a> {
    fn emit<S: Sink>(&mut self, sink: &mut S, tok: Tok<'_>, pos: usize) {
        if sink.token(tok, pos) == Flow::Stop {
            self.stop = true;
        }
    }

    fn text<S: Sink>(&mut self, sink: &mut S, from: usize, to: usize) {
        if to > from {
            let s = &self.s[from..to];
            self.emit(sink, Tok::Text(s), to);
        }
    }

    fn run<S: Sink>(&mut self, sink: &mut S) -> Result<(), GiveUp> {
        let (s, b) = (self.s, self.b);
        let n = b.len();
        let mut pos = 0;
        while pos < n && !self.stop {
            match self.mode {
                Mode::Data | Mode::Rcdata => {
                    let Some(k) = memchr2(b'<', b'&', &b[pos..]) else {
                        self.text(sink, pos, n);
                        pos = n;
                        break;
                    };
                    let at = pos + k;
                    self.text(sink, pos, at);
                    if self.stop {
                        break;
                    }
                    if b[at] == b'&' {
                        let r = char_ref(s, at, false);
                        if r.error {
                            self.emit(sink, Tok::Error, at);
                        }
                        let mut buf = [0u8; 8];
                        let t: &str = match r.chars {
                            None => "&",
                            Some((a, None)) => a.encode_utf8(&mut buf),
                            Some((a, Some(c))) => {
                                let l = a.encode_utf8(&mut buf).len();
                                let m = c.encode_utf8(&mut buf[l..]).len();
                                std::str::from_utf8(&buf[..l + m]).unwrap_or("\u{fffd}")
                            }
                        };
                        if !self.stop {
                            self.emit(sink, Tok::Text(t), r.next);
                        }
                        pos = r.next;
                    } else if self.mode == Mode::Rcdata {
                        pos = self.raw_lt(sink, at)?;
                    } else {
                        pos = self.tag_open(sink, at)?;
                    }
                }
                Mode::Rawtext | Mode::Script => {
                    let Some(k) = memchr(b'<', &b[pos..]) else {
                        self.text(sink, pos, n);
                        pos = n;
                        break;
                    };
                    let at = pos + k;
                    self.text(sink, pos, at);
                    if self.stop {
                        break;
                    }
                    pos = self.raw_lt(sink, at)?;
                }
                Mode::Plaintext => {
                    self.text(sink, pos, n);
                    pos = n;
                }
            }
        }
        if !self.stop {
            self.emit(sink, Tok::Eof, pos);
        }
        Ok(())
    }

    /// `<` in RCDATA, RAWTEXT or script data, at `at`.
    fn raw_lt<S: Sink>(&mut self, sink: &mut S, at: usize) -> Result<usize, GiveUp> {
        let b = self.b;
        match b.get(at + 1) {
            Some(b'/') => {}
            Some(b'!')
                if self.mode == Mode::Script && b.get(at + 2..at + 4) == Some(&b"--"[..]) =>
            {
                return Err(GiveUp("<!-- in script data"));
            }
            _ => {
                self.text(sink, at, at + 1);
                return Ok(at + 1);
            }
        }
        let start = at + 2;
        let mut e = start;
        while e < b.len() && b[e].is_ascii_alphabetic() {
            e += 1;
        }
        let appropriate = e > start
            && b[start..e].eq_ignore_ascii_case(self.last_start.as_bytes())
            && b.get(e)
                .is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>');
        if !appropriate {
            // `</` and the letters read go out as text.
            self.text(sink, at, e);
            return Ok(e);
        }
        match self.tag(sink, true, start, e)? {
            TagEnd::Emitted(p) => Ok(p),
            TagEnd::Eof => Ok(b.len()),
        }
    }

    /// `<` in the data state, at `at`.
    fn tag_open<S: Sink>(&mut self, sink: &mut S, at: usize) -> Result<usize, GiveUp> {
        let b = self.b;
        let n = b.len();
        let Some(&c) = b.get(at + 1) else {
            self.text(sink, at, n);
            return Ok(n);
        };
        match c {
            b'!' => Ok(self.markup(sink, at + 2)),
            b'/' => match b.get(at + 2) {
                None => {
                    self.text(sink, at, n);
                    Ok(n)
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let e = self.name_end(at + 2);
                    match self.tag(sink, true, at + 2, e)? {
                        TagEnd::Emitted(p) => Ok(p),
                        TagEnd::Eof => Ok(n),
                    }
                }
                Some(b'>') => {
                    self.emit(sink, Tok::Error, at + 3);
                    Ok(at + 3)
                }
                Some(_) => Ok(self.bogus(sink, at + 2)),
            },
            b'?' => Ok(self.bogus(sink, at + 1)),
            c if c.is_ascii_alphabetic() => {
                let e = self.name_end(at + 1);
                match self.tag(sink, false, at + 1, e)? {
                    TagEnd::Emitted(p) => Ok(p),
                    TagEnd::Eof => Ok(n),
                }
            }
            _ => {
                self.text(sink, at, at + 1);
                Ok(at + 1)
            }
        }
    }

    fn name_end(&self, from: usize) -> usize {
        let b = self.b;
        let mut e = from;
        while e < b.len() && !matches!(b[e], b'\t' | b'\n' | b'\x0C' | b' ' | b'/' | b'>') {
            e += 1;
        }
        e
    }

    /// A bogus comment whose text starts at `from`, up to `>`.
    fn bogus<S: Sink>(&mut self, sink: &mut S, from: usize) -> usize {
        let b = self.b;
        let (end, next) = match memchr(b'>', &b[from..]) {
            Some(k) => (from + k, from + k + 1),
            None => (b.len(), b.len()),
        };
        let c = &self.s[from..end];
        self.emit(sink, Tok::Comment(Cow::Borrowed(c)), next);
        next
    }

    /// After `<!`.
    fn markup<S: Sink>(&mut self, sink: &mut S, from: usize) -> usize {
        let b = self.b;
        if b[from..].starts_with(b"--") {
            return self.comment(sink, from + 2);
        }
        if b.len() >= from + 7 && b[from..from + 7].eq_ignore_ascii_case(b"doctype") {
            return self.doctype(sink, from + 7);
        }
        self.bogus(sink, from)
    }

    /// A comment whose text starts at `from` (after `<!--`).
    fn comment<S: Sink>(&mut self, sink: &mut S, from: usize) -> usize {
        let b = self.b;
        let rest = &b[from..];
        let (end, next) = if rest.starts_with(b">") {
            (from, from + 1)
        } else if rest.starts_with(b"->") {
            (from, from + 2)
        } else {
            let a = self.comment_end.find(rest);
            let c = memmem::find(rest, b"--!>");
            match (a, c) {
                (Some(a), Some(c)) if c < a => (from + c, from + c + 4),
                (Some(a), _) => (from + a, from + a + 3),
                (None, Some(c)) => (from + c, from + c + 4),
                (None, None) => {
                    // The page ends inside: the tokenizer keeps all but a
                    // trailing `-`, `--` or `--!`.
                    let mut end = b.len();
                    let t = &b[from..];
                    if t.ends_with(b"--!") {
                        end -= 3;
                    } else if t.ends_with(b"--") {
                        end -= 2;
                    } else if t.ends_with(b"-") {
                        end -= 1;
                    }
                    (end.max(from), b.len())
                }
            }
        };
        let c = &self.s[from..end];
        self.emit(sink, Tok::Comment(Cow::Borrowed(c)), next);
        next
    }

    /// A doctype after `<!doctype` (html5ever's doctype states).
    fn doctype<S: Sink>(&mut self, sink: &mut S, from: usize) -> usize {
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            Start,
            BeforeName,
            Name,
            AfterName,
            AfterKeyword(bool),
            BeforeId(bool),
            Quoted(bool, u8),
            AfterId(bool),
            Between,
            Bogus,
        }
        let b = self.b;
        let mut d = Doctype::default();
        let mut name: Vec<u8> = Vec::new();
        let mut ids: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut has = [false, false];
        let mut st = St::Start;
        let mut i = from;
        let next = loop {
            let Some(&c) = b.get(i) else {
                if !matches!(st, St::Bogus) {
                    d.force_quirks = true;
                }
                break b.len();
            };
            i += 1;
            match st {
                St::Start => {
                    if !is_ws(c) {
                        i -= 1;
                    }
                    st = St::BeforeName;
                }
                St::BeforeName => {
                    if is_ws(c) {
                    } else if c == b'>' {
                        d.force_quirks = true;
                        break i;
                    } else {
                        d.name = Some(String::new());
                        name.push(c.to_ascii_lowercase());
                        st = St::Name;
                    }
                }
                St::Name => {
                    if is_ws(c) {
                        st = St::AfterName;
                    } else if c == b'>' {
                        break i;
                    } else {
                        name.push(c.to_ascii_lowercase());
                    }
                }
                St::AfterName => {
                    let at = i - 1;
                    if b.len() >= at + 6 && b[at..at + 6].eq_ignore_ascii_case(b"public") {
                        i = at + 6;
                        st = St::AfterKeyword(true);
                    } else if b.len() >= at + 6 && b[at..at + 6].eq_ignore_ascii_case(b"system") {
                        i = at + 6;
                        st = St::AfterKeyword(false);
                    } else if is_ws(c) {
                    } else if c == b'>' {
                        break i;
                    } else {
                        d.force_quirks = true;
                        i -= 1;
                        st = St::Bogus;
                    }
                }
                St::AfterKeyword(k) | St::BeforeId(k) => {
                    let k_ix = usize::from(!k);
                    if is_ws(c) {
                        if st == St::AfterKeyword(k) {
                            st = St::BeforeId(k);
                        }
                    } else if c == b'"' || c == b'\'' {
                        has[k_ix] = true;
                        ids[k_ix].clear();
                        st = St::Quoted(k, c);
                    } else if c == b'>' {
                        d.force_quirks = true;
                        break i;
                    } else {
                        d.force_quirks = true;
                        i -= 1;
                        st = St::Bogus;
                    }
                }
                St::Quoted(k, q) => {
                    let k_ix = usize::from(!k);
                    if c == q {
                        st = St::AfterId(k);
                    } else if c == b'>' {
                        d.force_quirks = true;
                        break i;
                    } else {
                        ids[k_ix].push(c);
                    }
                }
                St::AfterId(true) | St::Between => {
                    if is_ws(c) {
                        if st == St::AfterId(true) {
                            st = St::Between;
                        }
                    } else if c == b'>' {
                        break i;
                    } else if c == b'"' || c == b'\'' {
                        has[1] = true;
                        ids[1].clear();
                        st = St::Quoted(false, c);
                    } else {
                        d.force_quirks = true;
                        i -= 1;
                        st = St::Bogus;
                    }
                }
                St::AfterId(false) => {
                    if is_ws(c) {
                    } else if c == b'>' {
                        break i;
                    } else {
                        i -= 1;
                        st = St::Bogus;
                    }
                }
                St::Bogus => {
                    if c == b'>' {
                        break i;
                    }
                }
            }
        };
        let text = |v: Vec<u8>| String::from_utf8(v).unwrap_or_default();
        if d.name.is_some() {
            d.name = Some(text(name));
        }
        let [p, s] = ids;
        if has[0] {
            d.public_id = Some(text(p));
        }
        if has[1] {
            d.system_id = Some(text(s));
        }
        self.emit(sink, Tok::Doctype(d), next);
        next
    }

    /// A tag whose name is `b[start..name_end]`; reads its attributes.
    fn tag<S: Sink>(
        &mut self,
        sink: &mut S,
        end: bool,
        start: usize,
        name_end: usize,
    ) -> Result<TagEnd, GiveUp> {
        let (s, b) = (self.s, self.b);
        let n = b.len();
        let mut attrs = std::mem::take(&mut self.attrs);
        attrs.clear();
        let mut self_closing = false;
        let mut i = name_end;
        let push = |attrs: &mut Vec<Attr<'a>>, name: Cow<'a, str>, value: Cow<'a, str>| {
            if !attrs.iter().any(|a| a.name == name) {
                attrs.push(Attr { name, value });
            }
        };
        // The state after a name or value: before attribute name.
        let done = 'tag: loop {
            // Before attribute name.
            while i < n && is_ws(b[i]) {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                break 'tag None;
            };
            match c {
                b'>' => break 'tag Some(i + 1),
                b'/' => {
                    // Self-closing start tag state.
                    match b.get(i + 1) {
                        None => break 'tag None,
                        Some(b'>') => {
                            self_closing = true;
                            break 'tag Some(i + 2);
                        }
                        Some(_) => {
                            i += 1;
                            continue 'tag;
                        }
                    }
                }
                _ => {}
            }
            // Attribute name: the first character is taken whatever it is.
            let ns = i;
            i += 1;
            while i < n && !matches!(b[i], b'\t' | b'\n' | b'\x0C' | b' ' | b'/' | b'>' | b'=') {
                i += 1;
            }
            // Keep `i` on a character boundary: names end at ASCII.
            let name = lower(&s[ns..i]);
            // After attribute name.
            while i < n && is_ws(b[i]) {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                break 'tag None;
            };
            if c != b'=' {
                push(&mut attrs, name, Cow::Borrowed(""));
                continue 'tag;
            }
            i += 1;
            // Before attribute value.
            while i < n && is_ws(b[i]) {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                break 'tag None;
            };
            match c {
                b'"' | b'\'' => {
                    let Some(k) = memchr(c, &b[i + 1..]) else {
                        break 'tag None;
                    };
                    let raw = &s[i + 1..i + 1 + k];
                    push(&mut attrs, name, attr_value(raw));
                    i = i + 1 + k + 1;
                    // After attribute value (quoted).
                    match b.get(i) {
                        None => break 'tag None,
                        Some(&c) if is_ws(c) => i += 1,
                        Some(b'/') | Some(b'>') => {}
                        Some(_) => {}
                    }
                }
                b'>' => {
                    push(&mut attrs, name, Cow::Borrowed(""));
                    break 'tag Some(i + 1);
                }
                _ => {
                    let vs = i;
                    while i < n && !matches!(b[i], b'\t' | b'\n' | b'\x0C' | b' ' | b'>') {
                        i += 1;
                    }
                    if i >= n {
                        break 'tag None;
                    }
                    push(&mut attrs, name, attr_value(&s[vs..i]));
                }
            }
        };
        let Some(next) = done else {
            self.attrs = attrs;
            return Ok(TagEnd::Eof);
        };
        let name = lower(&s[start..name_end]);
        let raw_name = if end { None } else { Some(name.clone()) };
        let tag = Tag {
            end,
            name,
            attrs: Cow::Borrowed(&attrs[..]),
            self_closing,
        };
        let flow = sink.token(Tok::Tag(tag), next);
        self.attrs = attrs;
        self.mode = match flow {
            Flow::Go => Mode::Data,
            Flow::Stop => {
                self.stop = true;
                Mode::Data
            }
            Flow::Rcdata => Mode::Rcdata,
            Flow::Rawtext => Mode::Rawtext,
            Flow::Script => Mode::Script,
            Flow::Plaintext => Mode::Plaintext,
        };
        if let (Some(raw), Mode::Rcdata | Mode::Rawtext | Mode::Script) = (raw_name, self.mode) {
            self.last_start.clear();
            self.last_start.push_str(&raw);
        }
        Ok(TagEnd::Emitted(next))
    }
}

/// The raw-text state the tree builder asks for after these start tags
/// (the token tests' fixed feedback).
fn feedback(name: &str) -> Flow {
    match name {
        "script" => Flow::Script,
        "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => Flow::Rawtext,
        "title" | "textarea" => Flow::Rcdata,
        "plaintext" => Flow::Plaintext,
        _ => Flow::Go,
    }
}

/// A token sequence as lines, adjacent text merged and parse errors
/// left out, except where one stands between a start tag and text that
/// begins with a newline (the tree builder then keeps the newline).
#[derive(Default)]
struct Trace {
    lines: Vec<String>,
    text: String,
    marked: bool,
    after_start: bool,
    error: bool,
}

impl Trace {
    fn flush(&mut self) {
        if !self.text.is_empty() {
            let mark = if self.marked { "!" } else { "" };
            self.lines.push(format!("T{mark} {:?}", self.text));
            self.text.clear();
            self.marked = false;
        }
    }

    fn push(&mut self, tok: Tok<'_>) {
        match tok {
            Tok::Text(t) => {
                if self.after_start && self.text.is_empty() {
                    self.marked = self.error && t.starts_with('\n');
                }
                self.after_start = false;
                self.text.push_str(t);
                return;
            }
            Tok::Error => {
                if self.after_start {
                    self.error = true;
                }
                return;
            }
            _ => {}
        }
        self.flush();
        self.after_start = false;
        let line = match tok {
            Tok::Tag(t) => {
                self.after_start = !t.end;
                self.error = false;
                let attrs: Vec<String> = t
                    .attrs
                    .iter()
                    .map(|a| format!("{}={:?}", a.name, a.value))
                    .collect();
                format!(
                    "{} {} [{}]{}",
                    if t.end { "E" } else { "S" },
                    t.name,
                    attrs.join(" "),
                    if t.self_closing { " /" } else { "" }
                )
            }
            Tok::Comment(c) => format!("C {c:?}"),
            Tok::Doctype(d) => format!(
                "D {:?} {:?} {:?} {}",
                d.name, d.public_id, d.system_id, d.force_quirks
            ),
            Tok::Null => "NUL".to_string(),
            Tok::Eof => "EOF".to_string(),
            Tok::Text(_) | Tok::Error => return,
        };
        self.lines.push(line);
    }
}

impl Sink for Trace {
    fn token(&mut self, tok: Tok<'_>, _pos: usize) -> Flow {
        let flow = match &tok {
            Tok::Tag(t) if !t.end => feedback(&t.name),
            _ => Flow::Go,
        };
        self.push(tok);
        flow
    }
}

/// One of html5ever's tokens as a [`Tok`], for the pages this tokenizer gives up on: the
/// sink `f` sees the same tokens either way.
pub(crate) fn from_html5ever<R>(
    token: html5ever::tokenizer::Token,
    f: impl FnOnce(Tok<'_>) -> R,
) -> R {
    use html5ever::tokenizer::{TagKind, Token};
    match token {
        Token::ParseError(_) => f(Tok::Error),
        Token::DoctypeToken(d) => f(Tok::Doctype(Doctype {
            name: d.name.map(|s| s.to_string()),
            public_id: d.public_id.map(|s| s.to_string()),
            system_id: d.system_id.map(|s| s.to_string()),
            force_quirks: d.force_quirks,
        })),
        Token::CommentToken(c) => f(Tok::Comment(Cow::Borrowed(&c))),
        Token::NullCharacterToken => f(Tok::Null),
        Token::EOFToken => f(Tok::Eof),
        Token::CharacterTokens(t) => f(Tok::Text(&t)),
        Token::TagToken(t) => {
            let attrs: Vec<Attr<'_>> = t
                .attrs
                .iter()
                .map(|a| Attr {
                    name: Cow::Borrowed(&*a.name.local),
                    value: Cow::Borrowed(&*a.value),
                })
                .collect();
            f(Tok::Tag(Tag {
                end: t.kind == TagKind::EndTag,
                name: Cow::Borrowed(&*t.name),
                attrs: Cow::Owned(attrs),
                self_closing: t.self_closing,
            }))
        }
    }
}

/// What a sink's [`Flow`] asks of html5ever's tokenizer.
pub(crate) fn html5ever_result(flow: Flow) -> html5ever::tokenizer::TokenSinkResult<()> {
    use html5ever::tokenizer::TokenSinkResult;
    use html5ever::tokenizer::states::RawKind;
    match flow {
        Flow::Go | Flow::Stop => TokenSinkResult::Continue,
        Flow::Rcdata => TokenSinkResult::RawData(RawKind::Rcdata),
        Flow::Rawtext => TokenSinkResult::RawData(RawKind::Rawtext),
        Flow::Script => TokenSinkResult::RawData(RawKind::ScriptData),
        Flow::Plaintext => TokenSinkResult::Plaintext,
    }
}

/// Test hook: the tokens of `text` by this tokenizer, one line each
/// (see `tests/it/tokens_equal.rs`), or why it gives the page up.
#[doc(hidden)]
pub fn token_trace(text: &str) -> Result<Vec<String>, &'static str> {
    let mut t = Trace::default();
    tokenize(text, &mut t).map_err(|g| g.0)?;
    t.flush();
    Ok(t.lines)
}

/// Test hook: the tokens of `text` by html5ever's tokenizer, in the
/// same form as [`token_trace`].
#[doc(hidden)]
pub fn token_trace_html5ever(text: &str) -> Vec<String> {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Token, TokenSink, TokenSinkResult, Tokenizer};
    use std::cell::RefCell;
    struct H(RefCell<Trace>);
    impl TokenSink for H {
        type Handle = ();
        fn process_token(&self, token: Token, _: u64) -> TokenSinkResult<()> {
            let flow = from_html5ever(token, |t| self.0.borrow_mut().token(t, 0));
            html5ever_result(flow)
        }
    }
    let tok = Tokenizer::new(H(RefCell::new(Trace::default())), Default::default());
    let q = BufferQueue::default();
    q.push_back(StrTendril::from_slice(text));
    while !matches!(tok.feed(&q), html5ever::TokenizerResult::Done) {}
    tok.end();
    let mut t = tok.sink.0.into_inner();
    t.flush();
    t.lines
}

/// Bench hook: tokenizes `text` into a sink that counts the tokens and
/// keeps nothing (with the raw-text feedback of the tree builder): the
/// floor of the streaming extractor.
#[doc(hidden)]
pub fn token_count(text: &str) -> Result<usize, &'static str> {
    struct Count(usize);
    impl Sink for Count {
        fn token(&mut self, tok: Tok<'_>, _pos: usize) -> Flow {
            self.0 += 1;
            match &tok {
                Tok::Tag(t) if !t.end => feedback(&t.name),
                _ => Flow::Go,
            }
        }
    }
    let mut c = Count(0);
    tokenize(text, &mut c).map_err(|g| g.0)?;
    Ok(c.0)
}
