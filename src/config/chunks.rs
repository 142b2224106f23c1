//! Where a watchlist file can be cut into parts that parse on their own.
//!
//! toml's spanned tree and token list take about 24 times the text they
//! parse (110 MB for a 4.5 MB file of 5000 entities), so a large watchlist
//! is parsed a run of `[[entity]]` tables at a time. A top-level
//! `[[entity]]` header starts a fresh table whatever came before it, so
//! the file's root is the first part's root plus the entities of the
//! others: the same tree, never held whole.

use std::ops::Range;

use toml_parser::lexer::TokenKind;

/// About how much text one part holds (whole entities, so often more).
pub(super) const PART_BYTES: usize = 256 * 1024;

/// The parts of `text`: the part before the second run of entities (the
/// `[watchlist]`, `[rules.*]` and `[[rule]]` tables and the first
/// entities), then runs of whole `[[entity]]` tables of about `part_bytes`.
/// Every part after the first starts at a top-level `[[entity]]` header and
/// holds only `[[entity]]`, `[entity.…]` and `[[entity.…]]` tables.
///
/// `None` when the file is to be parsed whole: when it is no longer than
/// one part, or cannot be cut so: a
/// top-level table other than an entity's after the first `[[entity]]`, an
/// `[entity]` table, a quoted header key, or brackets that do not balance
/// (a syntax error, which the whole parse reports).
pub(super) fn parts(text: &str, part_bytes: usize) -> Option<Vec<Range<usize>>> {
    // A file of one part is not lexed twice (here and by toml).
    if text.len() <= part_bytes {
        return None;
    }
    let source = toml_parser::Source::new(text);
    let mut lexer = source.lex().peekable();
    let mut starts = vec![0usize];
    let mut seen_entity = false;
    let mut depth = 0usize;
    let mut line_start = true;
    while let Some(tok) = lexer.next() {
        match tok.kind() {
            TokenKind::Newline => {
                line_start = true;
                continue;
            }
            TokenKind::Whitespace | TokenKind::Comment => continue,
            TokenKind::Eof => break,
            TokenKind::LeftSquareBracket if line_start && depth == 0 => {
                let at = tok.span().start();
                let array = lexer
                    .next_if(|t| t.kind() == TokenKind::LeftSquareBracket)
                    .is_some();
                let mut keys: Vec<&str> = Vec::new();
                loop {
                    let t = lexer.next()?;
                    match t.kind() {
                        TokenKind::Whitespace | TokenKind::Dot => {}
                        TokenKind::Atom => keys.push(text.get(t.span().start()..t.span().end())?),
                        TokenKind::RightSquareBracket => break,
                        // A quoted key, or a header broken by a newline.
                        _ => return None,
                    }
                }
                if array && lexer.next()?.kind() != TokenKind::RightSquareBracket {
                    return None;
                }
                match keys.as_slice() {
                    ["entity"] if array => {
                        if seen_entity && at - starts.last().copied().unwrap_or(0) >= part_bytes {
                            starts.push(at);
                        }
                        seen_entity = true;
                    }
                    ["entity"] => return None,
                    ["entity", ..] if seen_entity => {}
                    _ if seen_entity => return None,
                    _ => {}
                }
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.checked_sub(1)?;
            }
            _ => {}
        }
        line_start = false;
    }
    if depth != 0 {
        return None;
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    Some(
        starts
            .iter()
            .copied()
            .zip(ends)
            .map(|(s, e)| s..e)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str, n: usize) -> Option<Vec<&str>> {
        parts(text, n).map(|p| p.into_iter().map(|r| &text[r]).collect())
    }

    const ENTITIES: &str = "[watchlist]\nname = \"w\"\n\n\
        [[entity]]\nid = \"a\"\n[[entity.source]]\nid = \"s\"\n[entity.source.fields]\nx = \"p\"\n\n\
        [[entity]]\nid = \"b\"\n\n\
        [[entity]]\nid = \"c\"\n";

    #[test]
    fn parts_start_at_entity_headers_and_cover_the_text() {
        let p = cut(ENTITIES, 1).expect("cut");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("[watchlist]") && p[0].contains("id = \"a\""));
        assert!(p[1].starts_with("[[entity]]\nid = \"b\""));
        assert!(p[2].starts_with("[[entity]]\nid = \"c\""));
        assert_eq!(p.concat(), ENTITIES);
        // A part larger than the whole file: not cut.
        assert_eq!(cut(ENTITIES, 1 << 20), None);
        assert_eq!(cut(ENTITIES, 60).expect("cut").len(), 2);
    }

    #[test]
    fn crlf_files_are_cut_too() {
        let text = ENTITIES.replace('\n', "\r\n");
        let p = cut(&text, 1).expect("cut");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].starts_with("[[entity]]\r\nid = \"c\""));
    }

    #[test]
    fn headers_inside_strings_and_arrays_do_not_cut() {
        let text = "[[entity]]\nid = \"a\"\nnote = \"\"\"\n[[entity]]\n\"\"\"\n\
            m = [\n[[1]],\n]\nlit = '''\n[[entity]]'''\n[[entity]]\nid = \"b\"\n";
        let p = cut(text, 1).expect("cut");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].starts_with("[[entity]]\nid = \"b\""));
    }

    #[test]
    fn files_that_cannot_be_cut_are_parsed_whole() {
        // Another top-level table after the entities.
        assert_eq!(
            cut("[[entity]]\nid = \"a\"\n[rules.x]\nenabled = false\n", 1),
            None
        );
        // A plain [entity] table, a quoted key, unbalanced brackets.
        assert_eq!(cut("[entity]\nid = \"a\"\n", 1), None);
        assert_eq!(cut("[[\"entity\"]]\nid = \"a\"\n", 1), None);
        assert_eq!(cut("[[entity]]\nid = [\"a\"\n[[entity]]\n", 1), None);
        // Tables before the first entity are fine.
        assert!(cut("[watchlist]\n[rules.x]\n[[rule]]\n[[entity]]\n", 1).is_some());
    }
}
