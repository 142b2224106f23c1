//! Architecture invariants, checked by reading the source (as
//! rust-analyzer's `tidy` does). ARCHITECTURE.md, "Architecture Invariants
//! checked by tidy", states each rule; this test prints every violation as
//! `file:line: rule` and fails if there is one.
//!
//! The source is read with comments, string and char literals blanked out
//! (newlines kept, so line numbers hold) and `#[cfg(test)]` items removed:
//! the rules are about what the daemon runs, and a unit test may read a
//! fixture from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules, lowest layer first. A module may import
/// from its own layer or a lower one, never a higher one, and the graph has
/// no cycle. Keep in step with ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["text", "record", "retry"],
    &["classify", "extract", "diff", "schedule"],
    &["model"],
    &["detect"],
    &["fetch", "store", "registry"],
    &["config"],
    &["alert", "site"],
    &["check", "export"],
    &["read"],
    &["daemon"],
    &["cli"],
    &["app", "demo"],
];

/// Deliberate exceptions, each with its reason: (file, rule text).
const ALLOW: &[(&str, &str, &str)] = &[]; // none today

/// Modules that compute and decide but do no I/O and read no clock.
const PURE: &[&str] = &[
    "src/extract",
    "src/diff.rs",
    "src/diff/",
    "src/detect",
    "src/classify",
    "src/record.rs",
    "src/text.rs",
    "src/model.rs",
    "src/model/",
    "src/site/canon.rs",
    "src/site/mentions.rs",
    "src/site/pdf.rs",
    "src/site/scan.rs",
    "src/site/sitemap.rs",
    "src/site/mod.rs",
];

/// What a pure module may not name.
const NOT_IN_PURE: &[(&str, &str)] = &[
    (
        "crate::config",
        "imports config (use crate::model for data)",
    ),
    ("crate::store", "imports store"),
    ("crate::fetch", "imports fetch"),
    ("crate::alert", "imports alert"),
    ("tokio", "uses tokio"),
    ("std::fs", "uses std::fs"),
    ("Utc::now", "reads the clock"),
    ("SystemTime::now", "reads the clock"),
    ("Instant::now", "reads the clock"),
    ("Local::now", "reads the clock"),
];

struct File {
    /// `src/...`, with forward slashes.
    path: String,
    /// The code with comments, literals and `#[cfg(test)]` items blanked.
    code: String,
}

impl File {
    fn line(&self, offset: usize) -> usize {
        self.code[..offset].matches('\n').count() + 1
    }
}

fn sources() -> Vec<File> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    walk(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            let rel = p.strip_prefix(root).expect("under the crate");
            File {
                path: rel.to_string_lossy().replace('\\', "/"),
                code: without_test_items(&blank_comments_and_literals(&text)),
            }
        })
        .collect()
}

/// Comments, string, byte-string, raw-string and char literals replaced by
/// spaces; newlines kept. Lifetimes (`'a`) are left alone.
fn blank_comments_and_literals(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = memchr_nl(b, i);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some((start, hashes)) = raw_string_start(b, i) {
            // r"..." / r#"..."# / br#"..."#: ends at `"` and `hashes` #s.
            let mut j = start;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"'
                    && b[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&c| c == b'#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            blank(&mut out, i, j.min(b.len()));
            i = j;
        } else if b[i] == b'"'
            || (b[i] == b'b' && rest.get(1) == Some(&b'"') && !ident_before(b, i))
        {
            let mut j = if b[i] == b'b' { i + 2 } else { i + 1 };
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, (j + 1).min(b.len()));
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime.
            if rest.get(1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                blank(&mut out, i, (j + 1).min(b.len()));
                i = j + 1;
            } else if let Some(len) = src[i + 1..]
                .chars()
                .next()
                .map(char::len_utf8)
                .filter(|&len| b.get(i + 1 + len) == Some(&b'\''))
            {
                blank(&mut out, i, i + 2 + len);
                i += 2 + len;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8: only whole literals become spaces")
}

fn memchr_nl(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p)
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// At `i`, `r"`, `r#…#"`, `br"` or `br#…"` not inside an identifier:
/// (index after the opening quote, number of #s).
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if ident_before(b, i) {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    (b.get(j) == Some(&b'"')).then_some((j + 1, hashes))
}

/// `#[cfg(test)]` and the item after it (up to its matching `}` or its
/// `;`) blanked.
fn without_test_items(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(p) = code[from..].find("#[cfg(test)]") {
        let start = from + p;
        let mut j = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        while j < b.len() {
            match b[j] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for c in &mut out[start..j.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = j.min(b.len());
    }
    String::from_utf8(out).expect("ASCII blanks")
}

/// Every `crate::a::b` path the code names, as (offset, full path): the
/// paths of `use` trees (`use crate::{a, b::{c, d}}` gives `crate::a`,
/// `crate::b::c`, `crate::b::d`) and paths in expressions and types.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("crate") {
        let at = from + p;
        from = at + 5;
        if ident_before(b, at)
            || b.get(at + 5)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            continue;
        }
        let rest = code[at + 5..].trim_start();
        if !rest.starts_with("::") {
            continue;
        }
        let start = at + 5 + (code[at + 5..].len() - rest.len()) + 2;
        expand(code, start, "crate".to_string(), &mut out, at);
    }
    out
}

/// Reads a path tail at `i` (after `::`), pushing each full path.
fn expand(code: &str, mut i: usize, prefix: String, out: &mut Vec<(usize, String)>, at: usize) {
    let b = code.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if b.get(i) == Some(&b'{') {
        // A group: comma-separated trees up to the matching `}`.
        i += 1;
        loop {
            i = skip_ws(i);
            match b.get(i) {
                None => return,
                Some(b'}') => return,
                Some(b',') => i += 1,
                _ => {
                    let end = tree_end(b, i);
                    let tree = &code[i..end];
                    let seg_end = tree
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(tree.len());
                    let seg = &tree[..seg_end];
                    let after = tree[seg_end..].trim_start();
                    let path = if seg.is_empty() {
                        prefix.clone()
                    } else {
                        format!("{prefix}::{seg}")
                    };
                    if let Some(rest) = after.strip_prefix("::") {
                        let off = i + tree.len() - rest.len();
                        expand(code, off, path, out, at);
                    } else if !seg.is_empty() && seg != "self" {
                        out.push((at, path));
                    } else if seg == "self" {
                        out.push((at, prefix.clone()));
                    }
                    i = end;
                }
            }
        }
    }
    let end = i + code[i..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(code.len() - i);
    let seg = &code[i..end];
    if seg.is_empty() {
        out.push((at, prefix));
        return;
    }
    let path = format!("{prefix}::{seg}");
    let after = skip_ws(end);
    if code[after..].starts_with("::") && !code[after + 2..].trim_start().starts_with('<') {
        expand(code, after + 2, path, out, at);
    } else {
        out.push((at, path));
    }
}

/// The end of one use tree starting at `i` inside a group (the `,` or `}`
/// at depth 0).
fn tree_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return i,
            b'}' => depth -= 1,
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The top-level module a file belongs to (`src/daemon/plan.rs` → `daemon`).
fn top_module(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then_some(name)
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Occurrences of `word` as a whole path segment (not inside an identifier).
fn find_word<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let b = code.as_bytes();
        !ident_before(b, i)
            && !b
                .get(i + word.len())
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    })
}

/// All violations, `file:line: what`.
fn violations(files: &[File]) -> Vec<String> {
    let mut v = Vec::new();
    // sled only in store, lettre only in alert.
    for f in files {
        for (krate, home) in [("sled", "src/store/"), ("lettre", "src/alert/")] {
            if f.path.starts_with(home) {
                continue;
            }
            for i in find_word(&f.code, krate) {
                if f.code[i + krate.len()..].trim_start().starts_with("::")
                    || f.code[..i].trim_end().ends_with("use")
                    || f.code[..i].trim_end().ends_with("crate")
                {
                    let allowed = ALLOW.iter().any(|(file, rule, _)| {
                        *file == f.path && *rule == format!("{krate} outside")
                    });
                    if !allowed {
                        v.push(format!("{}:{}: {krate} outside {home}", f.path, f.line(i)));
                    }
                }
            }
        }
    }
    // Pure modules: no I/O, no clock, no upper layers.
    for f in files
        .iter()
        .filter(|f| PURE.iter().any(|p| f.path.starts_with(p)))
    {
        let paths = crate_paths(&f.code);
        for (needle, what) in NOT_IN_PURE {
            if let Some(module) = needle.strip_prefix("crate::") {
                for (at, path) in &paths {
                    if path.split("::").nth(1) == Some(module) {
                        v.push(format!(
                            "{}:{}: pure module {what} ({path})",
                            f.path,
                            f.line(*at)
                        ));
                    }
                }
            } else {
                let (first, _) = needle.split_once("::").unwrap_or((needle, ""));
                for i in find_word(&f.code, first) {
                    let rest = &f.code[i..];
                    let hit = if needle.contains("::") {
                        let compact: String = rest
                            .chars()
                            .take(needle.len() + 8)
                            .filter(|c| !c.is_whitespace())
                            .collect();
                        compact.starts_with(needle)
                    } else {
                        true
                    };
                    let allowed = ALLOW.iter().any(|(file, rule, _)| {
                        *file == f.path && what.contains(rule.trim_start_matches("pure module "))
                    });
                    if hit && !allowed {
                        v.push(format!("{}:{}: pure module {what}", f.path, f.line(i)));
                    }
                }
            }
        }
    }
    // The module graph: layers and cycles.
    let mut edges: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for f in files {
        let Some(from) = top_module(&f.path) else {
            continue;
        };
        if layer(from).is_none() {
            v.push(format!(
                "{}:1: module `{from}` has no layer (tests/it/tidy.rs LAYERS, ARCHITECTURE.md)",
                f.path
            ));
            continue;
        }
        for (at, path) in crate_paths(&f.code) {
            let Some(to) = path.split("::").nth(1) else {
                continue;
            };
            let Some(to) = LAYERS
                .iter()
                .flat_map(|l| l.iter())
                .find(|m| **m == to)
                .copied()
            else {
                continue; // a crate-root item (a macro, a re-export), not a module
            };
            if to == from {
                continue;
            }
            let site = format!("{}:{}", f.path, f.line(at));
            if layer(to) > layer(from) {
                v.push(format!("{site}: upward import {from} -> {to} ({path})"));
            }
            edges.entry(from).or_default().entry(to).or_insert(site);
        }
    }
    for cycle in cycles(&edges) {
        let members: BTreeSet<&str> = cycle.iter().copied().collect();
        let mut text = format!(
            "import cycle {} (its component: {})",
            cycle[..cycle[1..]
                .iter()
                .position(|m| *m == cycle[0])
                .map_or(cycle.len(), |p| p + 2)]
                .join(" -> "),
            members.iter().copied().collect::<Vec<_>>().join(", ")
        );
        for (a, tos) in &edges {
            for (b, site) in tos {
                if members.contains(a) && members.contains(b) {
                    text.push_str(&format!("\n    {a} -> {b} at {site}"));
                }
            }
        }
        v.push(text);
    }
    v
}

/// The strongly connected components with more than one module, each as a
/// closed walk `a -> b -> … -> a` through it.
fn cycles<'a>(edges: &BTreeMap<&'a str, BTreeMap<&'a str, String>>) -> Vec<Vec<&'a str>> {
    let nodes: BTreeSet<&str> = edges
        .keys()
        .copied()
        .chain(edges.values().flat_map(|m| m.keys().copied()))
        .collect();
    let reach = |from: &'a str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for &m in edges
                .get(n)
                .map(|m| m.keys().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if seen.insert(m) {
                    stack.push(m);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&str, BTreeSet<&str>> = nodes.iter().map(|&n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reach[n].contains(n) {
            continue;
        }
        let scc: BTreeSet<&str> = nodes
            .iter()
            .copied()
            .filter(|&m| m == n || (reach[n].contains(m) && reach[m].contains(n)))
            .collect();
        done.extend(scc.iter().copied());
        // A shortest walk n -> … -> n inside the component (BFS).
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n]);
        'bfs: while let Some(a) = queue.pop_front() {
            for &b in edges
                .get(a)
                .map(|m| m.keys().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if !scc.contains(b) {
                    continue;
                }
                if b == n {
                    prev.insert(n, a);
                    break 'bfs;
                }
                if !prev.contains_key(b) {
                    prev.insert(b, a);
                    queue.push_back(b);
                }
            }
        }
        let mut walk = vec![n];
        let mut cur = prev[n];
        while cur != n {
            walk.push(cur);
            cur = prev[cur];
        }
        walk.push(n);
        walk.reverse();
        // The rest of the component, so that every edge in it is printed.
        let rest: Vec<&str> = scc.iter().copied().filter(|m| !walk.contains(m)).collect();
        walk.extend(rest);
        out.push(walk);
    }
    out
}

#[test]
fn architecture_invariants_hold() {
    let files = sources();
    assert!(files.len() > 20, "read {} files under src/", files.len());
    let v = violations(&files);
    assert!(
        v.is_empty(),
        "{} architecture violation(s) (ARCHITECTURE.md, \"Architecture Invariants checked by tidy\"):\n{}",
        v.len(),
        v.join("\n")
    );
}

/// The layer list of ARCHITECTURE.md ("Architecture Invariants checked by
/// tidy": the numbered list, lowest first) is the one this test enforces.
#[test]
fn architecture_md_states_the_layers_tidy_checks() {
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    let section = md
        .split("## Architecture Invariants checked by tidy")
        .nth(1)
        .expect("ARCHITECTURE.md has the tidy section");
    let stated: Vec<Vec<String>> = section
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|l| {
            // The backticked names before any parenthesis are the layer.
            let head = l.split('(').next().unwrap_or(l);
            head.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .collect();
    let enforced: Vec<Vec<String>> = LAYERS
        .iter()
        .map(|l| l.iter().map(|m| m.to_string()).collect())
        .collect();
    assert_eq!(
        stated, enforced,
        "ARCHITECTURE.md's layer list and tidy.rs's LAYERS differ"
    );
}

/// The reader itself, on code written to trip it: a rule it cannot see is
/// no rule.
#[test]
fn tidy_sees_through_comments_literals_groups_and_test_items() {
    let src = r##"
use crate::{record::Finding, extract::{self, html}};
// use crate::store; in a comment
/* block /* nested */ crate::alert */
const S: &str = "crate::fetch and sled::Db in a string";
const R: &str = r#"Utc::now() "quoted" crate::daemon"#;
const C: char = '"';
fn f<'a>(x: &'a str) -> usize { crate :: diff::changes(x); let _ = chrono::Utc::now(); 0 }
#[cfg(test)]
mod tests { use crate::store::Store; fn t() { std::fs::read("x"); } }
fn g() { let _ = sled::open("x"); }
"##;
    let code = without_test_items(&blank_comments_and_literals(src));
    let paths: Vec<String> = crate_paths(&code).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        paths,
        [
            "crate::record::Finding",
            "crate::extract",
            "crate::extract::html",
            "crate::diff::changes"
        ]
    );
    let files = [File {
        path: "src/extract/x.rs".into(),
        code,
    }];
    let v = violations(&files);
    assert_eq!(
        v,
        [
            "src/extract/x.rs:11: sled outside src/store/",
            "src/extract/x.rs:8: pure module reads the clock",
        ],
        "{v:#?}"
    );
}
